"""What a killed job's local Ray leaves behind is stopped: its run dir, its guard, the sweep.

Ray 2.60 starts each worker in a process group of its own, and Serve starts HAProxy (`haproxy
-db -f <config>`: foreground, no master process; `-sf <old pid>` added on every reload) as a
plain child of its HAProxyManager actor, in that actor's group. When the job's group is killed,
or the driver alone (raylet and GCS die with it), the manager exits, and whether it kills its
children first is a race: its periodic raylet check does ("Shutting down the core worker because
the local raylet failed"), a failed raylet call seen first does not ("Exiting because the Raylet
IPC connection failed"); the raylet that kills a dead worker's group is dead too. HAProxy is
left to init, bound to the service port and, on every interface, its stats and metrics ports.
Ray's agents outlive a SIGKILL of the driver alone too (the dashboard agent holds port 52365).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the guard process imports this module: only the standard library, psutil
    import psutil

# A local Ray's run dir: HAProxy's config, sockets and state, and the guard's records.
RUN_DIR_PREFIX = "hap-"
_OWNER = "owner"  # "<pid> <start time>" of the process whose Ray it is: the mark of our dirs
_ROOTS = "ray.pids"  # the Ray processes it started (gcs_server, raylet, dashboard, ...)
_TRACKED = "tracked.json"  # those and every descendant the guard has seen
_GUARD_INTERVAL_S = 1.0
_GUARD_DEADLINE_S = 30.0
_GUARD_CODE = "import sys; from app.localray import guard; guard(int(sys.argv[1]), sys.argv[2])"
_guards: list[subprocess.Popen] = []  # referenced, so no "still running" warning at exit

Table = dict[int, tuple[int, float, list[str]]]  # pid -> (parent pid, start time, command line)


def new_run_dir() -> Path:
    """A fresh run dir marked with this process as its owner."""
    run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
    (run_dir / _OWNER).write_text(f"{os.getpid()} {_started(os.getpid())!r}\n")
    return run_dir


def start_guard(run_dir: Path) -> subprocess.Popen:
    """A small process that outlives this one and, once this one is gone however it ended,
    stops what is left of its Ray and removes `run_dir`.

    Its own session: a signal to the job's process group (Ctrl-C, a supervisor's SIGKILL)
    does not reach it. It watches this process through a pidfd (no polling for the death)
    and meanwhile records the Ray's process tree every second, so it tells our processes from
    anything else: those recorded (pid and start time) and their descendants, and the run's
    HAProxy (`_of_run`). Its report goes to this process's stderr if that is a file (the main
    job's log), never to a pipe, whose reader would wait for the guard to close it."""
    import stat

    log = subprocess.DEVNULL
    with contextlib.suppress(OSError):
        log = 2 if stat.S_ISREG(os.fstat(2).st_mode) else log
    process = subprocess.Popen(
        [sys.executable, "-c", _GUARD_CODE, str(os.getpid()), str(run_dir)],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    _guards.append(process)
    return process


def record_ray_processes(run_dir: Path) -> None:
    """Tell the guard which processes the local Ray this process just started are."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return
    pids = [info.process.pid for infos in node.all_processes.values() for info in infos]
    _write_json(run_dir / _ROOTS, [[p, t] for p in pids if (t := _started(p)) is not None])


def guard(owner: int, run_dir: str) -> None:
    """The guard process (`start_guard`): wait for `owner` to end, then clean up."""
    run = Path(run_dir)
    tracked: dict[int, float] = {}
    gone = _owner_watch(owner)
    while not gone(_GUARD_INTERVAL_S):
        if _track(run, tracked):
            _write_json(run / _TRACKED, sorted(tracked.items()))
    stopped = _clean_up({run: tracked})[run]
    shutil.rmtree(run, ignore_errors=True)
    if stopped:
        print(f"guard of {run}: pid {owner} ended; stopped {', '.join(stopped)}", file=sys.stderr)


def sweep_stale_runs(base: Path | None = None) -> list[str]:
    """Clean up run dirs (in `base`, the temp dir by default) whose owner has died and whose
    guard did not finish (killed with it): their processes stopped, the dirs removed. Only
    this user's dirs with our owner mark are looked at, and only the processes recorded there
    (same pid and start time), the run's HAProxy and guard (`_of_run`) and their descendants
    are stopped: never anything of a live run or of anyone else. One line per dir cleaned."""
    stale: dict[Path, dict[int, float]] = {}
    owners: dict[Path, str] = {}
    for run_dir in Path(base or tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*"):
        try:
            if run_dir.stat().st_uid != os.getuid():
                continue
            pid, started = (run_dir / _OWNER).read_text().split()
            if _started(int(pid)) == float(started):
                continue
            stale[run_dir] = dict(_read_pairs(run_dir / _ROOTS) + _read_pairs(run_dir / _TRACKED))
            owners[run_dir] = pid
        except (OSError, ValueError):
            continue  # not ours (no mark: `jobs.serve_env`'s, another tool's), or unreadable
    notes = []
    for run_dir, stopped in _clean_up(stale).items():
        shutil.rmtree(run_dir, ignore_errors=True)
        what = f"stopped {', '.join(stopped)} and " if stopped else ""
        notes.append(
            f"left by pid {owners[run_dir]}, which ended uncleanly: {what}removed {run_dir}"
        )
    return notes


def _owner_watch(owner: int) -> Callable[[float], bool]:
    """`gone(timeout)`: whether `owner` has ended, waiting up to `timeout` s to find out."""
    pidfd = None
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(owner)
    # Our parent until it ends: still our parent now, the pidfd is the owner's, not a reused pid's.
    if os.getppid() != owner:
        return lambda timeout: True
    if pidfd is None:  # no pidfd (before Linux 5.3): the reparenting shows the end

        def reparented(timeout: float) -> bool:
            time.sleep(timeout)
            return os.getppid() != owner

        return reparented
    import select

    watch = select.poll()
    watch.register(pidfd, select.POLLIN)
    return lambda timeout: bool(watch.poll(int(timeout * 1000)))


def _track(run: Path, tracked: dict[int, float]) -> bool:
    """Add the recorded Ray processes and their descendants to `tracked` and drop those that
    ended (one left to init by its dying parent stays); whether it changed."""
    before = dict(tracked)
    table = _process_table()
    for pid in list(tracked):
        if table.get(pid, (0, None))[1] != tracked[pid]:
            del tracked[pid]
    roots = [p for p, started in _read_pairs(run / _ROOTS) if table.get(p, (0, 0))[1] == started]
    for pid in _with_descendants(roots, table):
        tracked[pid] = table[pid][1]
    return tracked != before


def _with_descendants(pids: Iterable[int], table: Table) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        # Never the guard itself, nor init, to which orphans are handed.
        if pid not in found and pid not in (os.getpid(), 1) and pid in table:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _process_table(cmdlines: bool = False) -> Table:
    """Every live process we can read (without command lines: one small read of /proc each,
    for the guard's snapshot every second)."""
    import psutil

    table = {}
    attrs = ["ppid", "create_time", "status"] + (["cmdline"] if cmdlines else [])
    for proc in psutil.process_iter(attrs):
        info = proc.info
        if info["status"] != psutil.STATUS_ZOMBIE and info["create_time"] is not None:
            table[proc.pid] = (info["ppid"] or 0, info["create_time"], info.get("cmdline") or [])
    return table


def _of_run(cmdline: list[str], run: Path) -> bool:
    """Whether a command line is one of the run's: HAProxy with its config there (`-f
    <run>/<node id>/haproxy.cfg`, on every reload too) or the run's guard. Nothing else that
    merely names a file there (a `tail -f` of its logs) is taken for ours."""
    prefix = f"{run}{os.sep}"
    if any(a == "-f" and b.startswith(prefix) for a, b in itertools.pairwise(cmdline)):
        return True
    return _GUARD_CODE in cmdline and str(run) in cmdline


def _leftovers(runs: dict[Path, dict[int, float]]) -> dict[Path, list[psutil.Process]]:
    """Per run dir, the live processes of it: recorded ones (same pid and start time), its
    HAProxy and guard (`_of_run`), and all their descendants."""
    import psutil

    table = _process_table(cmdlines=True)
    found: dict[Path, list[psutil.Process]] = {}
    for run, tracked in runs.items():
        ours = [p for p, (_, t, cmd) in table.items() if tracked.get(p) == t or _of_run(cmd, run)]
        found[run] = []
        for pid in sorted(_with_descendants(ours, table)):
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == table[pid][1]:
                    found[run].append(proc)
    return found


def _clean_up(runs: dict[Path, dict[int, float]]) -> dict[Path, list[str]]:
    """Stop every leftover of these runs (SIGTERM, SIGKILL after 2 s), again while new ones
    show up (a worker still alive may start HAProxy once more), for up to _GUARD_DEADLINE_S;
    per run, "pid N (name)" of each stopped."""
    import psutil

    stopped: dict[Path, list[str]] = {run: [] for run in runs}
    end = time.monotonic() + _GUARD_DEADLINE_S
    while runs and time.monotonic() < end:
        found = _leftovers(runs)
        procs = [proc for run_procs in found.values() for proc in run_procs]
        if not procs:
            break
        for run, run_procs in found.items():
            stopped[run] += [f"pid {p.pid} ({_name(p)})" for p in run_procs]
        for how, grace in (("terminate", 2.0), ("kill", 5.0)):
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    getattr(proc, how)()
            if _wait_gone(procs, grace):
                break
    return stopped


def _wait_gone(procs: Iterable[psutil.Process], timeout: float) -> bool:
    """Until each has ended (a zombie has: its sockets are closed); whether all did in time."""
    import psutil

    def running(proc: psutil.Process) -> bool:
        with contextlib.suppress(psutil.Error):
            return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        return False

    end = time.monotonic() + timeout
    while any(running(p) for p in procs):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def _name(proc: psutil.Process) -> str:
    import psutil

    with contextlib.suppress(psutil.Error):
        return proc.name()
    return "?"


def _started(pid: int) -> float | None:
    """When `pid` started, None once it has ended: pids are reused, a pid with its start time
    names one process."""
    import psutil

    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        if proc.status() != psutil.STATUS_ZOMBIE:
            return proc.create_time()
    return None


def _read_pairs(path: Path) -> list[tuple[int, float]]:
    with contextlib.suppress(OSError, ValueError, TypeError):
        return [(int(pid), float(started)) for pid, started in json.loads(path.read_text())]
    return []


def _write_json(path: Path, data) -> None:
    from app.fs import atomic_write

    with contextlib.suppress(OSError):  # the owner's exit may have removed the dir already
        atomic_write(path, json.dumps(data))
