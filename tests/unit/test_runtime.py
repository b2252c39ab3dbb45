"""Jobs stop in order on SIGTERM (`ray job stop`, systemd, Kubernetes), as on Ctrl-C; what a
local Ray leaves when its job is killed is stopped (the guard, the sweep at the next start); a
port the service needs names who holds it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from subprocess import PIPE

import psutil
import pytest

from app.localray import RUN_DIR_PREFIX, sweep_stale_runs
from app.localservices import port_open
from app.serving.deploy import PortInUse, check_port_free
from tests.utils import ROOT, wait_for

JOB = textwrap.dedent(
    """
    import pathlib, sys, time
    from app.runtime import run_job

    marker = pathlib.Path(sys.argv[1])

    def main():
        try:
            marker.write_text("working")
            time.sleep(120)
        finally:
            marker.write_text("cleaned up")  # what a job's shutdown path does

    run_job(main)
    """
)


def test_sigterm_runs_the_shutdown_path_and_exits_with_one_line(tmp_path):
    marker = tmp_path / "state"
    job = subprocess.Popen(
        [sys.executable, "-c", JOB, str(marker)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: marker.exists() and marker.read_text() == "working", "the job", 30, 0.05)
        job.send_signal(signal.SIGTERM)
        _, stderr = job.communicate(timeout=30)
    finally:
        job.kill()
    assert job.returncode == 128 + signal.SIGTERM
    assert stderr.strip() == "stopped: SIGTERM received"
    assert marker.read_text() == "cleaned up"


# A stand-in for what a local Ray leaves when its driver is killed, in real processes: `owner`
# (the driver) starts the guard, a "raylet" in its own process group, which starts a "worker"
# in a session of its own (as Ray 2.60 starts each worker), and an "ingress" the owner starts
# in another session, outside the recorded tree, whose command line names the run dir (as
# HAProxy's names its config there). Each prints its pid; the ingress listens on a port.
FAKE_RAY = textwrap.dedent(
    """
    import os, socket, subprocess, sys, time

    role = sys.argv[1]
    here = [sys.executable, __file__]
    if role == "owner":
        from app.localray import _started, _write_json, new_run_dir, start_guard

        run_dir = new_run_dir()
        start_guard(run_dir)
        raylet = subprocess.Popen(here + ["raylet"], stdout=subprocess.PIPE, text=True)
        worker = int(raylet.stdout.readline())
        _write_json(run_dir / "ray.pids", [[raylet.pid, _started(raylet.pid)]])
        ingress = subprocess.Popen(
            here + ["ingress", "-f", str(run_dir / "node" / "haproxy.cfg")],
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        port = int(ingress.stdout.readline())
        print(run_dir, raylet.pid, worker, ingress.pid, port, flush=True)
    elif role == "raylet":
        worker = subprocess.Popen(here + ["worker"], start_new_session=True)
        print(worker.pid, flush=True)
    elif role == "ingress":
        listener = socket.create_server(("127.0.0.1", 0))
        print(listener.getsockname()[1], flush=True)
    time.sleep(600)
    """
)


def start_fake_ray(script: Path) -> tuple[subprocess.Popen, Path, dict[str, int], int]:
    script.write_text(FAKE_RAY)
    owner = subprocess.Popen(
        [sys.executable, str(script), "owner"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as a job started from a shell
    )
    run_dir, raylet, worker, ingress, port = owner.stdout.readline().split()
    pids = {"raylet": int(raylet), "worker": int(worker), "ingress": int(ingress)}
    return owner, Path(run_dir), pids, int(port)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_leftovers(pids) -> None:
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()


def test_guard_stops_what_a_killed_owner_left_and_removes_its_run_dir(tmp_path):
    owner, run_dir, pids, port = start_fake_ray(tmp_path / "fake_ray.py")
    try:
        # The guard has recorded the "raylet" and its "worker" (a snapshot a second).
        tracked = run_dir / "tracked.json"
        wait_for(
            lambda: tracked.exists() and {pids["raylet"], pids["worker"]} <= recorded(tracked),
            "the guard to record the tree",
            30,
            0.1,
        )
        assert pids["ingress"] not in recorded(tracked)  # found by its command line only
        # SIGKILL of the job's process group: the owner and the "raylet" die, the "worker"
        # and the "ingress" (sessions of their own) are left to init, as with Ray.
        os.killpg(owner.pid, signal.SIGKILL)
        owner.wait(timeout=30)
        wait_for(
            lambda: not any(running(pid) for pid in pids.values()),
            "the guard to stop the worker and the ingress",
            30,
            0.1,
        )
        assert not port_open(port)
        wait_for(lambda: not run_dir.exists(), "the guard to remove the run dir", 30, 0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(owner.pid, signal.SIGKILL)
        kill_leftovers(pids.values())
        shutil.rmtree(run_dir, ignore_errors=True)


def recorded(path: Path) -> set[int]:
    with contextlib.suppress(ValueError, OSError):
        return {pid for pid, _ in json.loads(path.read_text())}
    return set()


def test_a_run_dir_is_swept_only_when_its_owner_is_dead_and_marked_as_ours(tmp_path):
    def run_with_ingress(owner: tuple[int, float] | None) -> tuple[Path, subprocess.Popen]:
        run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir=tmp_path))
        if owner is not None:
            (run_dir / "owner").write_text(f"{owner[0]} {owner[1]!r}\n")
        ingress = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import time; time.sleep(600)",
                "-f",
                f"{run_dir}/n/haproxy.cfg",
            ],
            start_new_session=True,
        )
        return run_dir, ingress

    gone = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=PIPE)
    gone_owner = (gone.pid, psutil.Process(gone.pid).create_time())
    gone.communicate(b"")
    stale, stale_ingress = run_with_ingress(gone_owner)
    live, live_ingress = run_with_ingress((os.getpid(), psutil.Process().create_time()))
    unmarked, unmarked_ingress = run_with_ingress(None)  # e.g. `jobs.serve_env`'s, for ray start
    ingresses = [stale_ingress, live_ingress, unmarked_ingress]
    try:
        (note,) = sweep_stale_runs(tmp_path)
        assert note.endswith(f" and removed {stale}")
        assert note.startswith(f"left by pid {gone.pid}, which ended uncleanly: stopped pid ")
        assert f"pid {stale_ingress.pid} (python" in note
        assert stale_ingress.wait(timeout=10) is not None
        assert not stale.exists()
        assert live.exists() and live_ingress.poll() is None
        assert unmarked.exists() and unmarked_ingress.poll() is None
    finally:
        for ingress in ingresses:
            ingress.kill()
            ingress.wait()
        for run_dir in (stale, live, unmarked):
            shutil.rmtree(run_dir, ignore_errors=True)


def test_a_held_port_is_named_with_the_holders_pid_and_command_line(tmp_path):
    script = tmp_path / "listener.py"
    script.write_text(LISTENER)
    holder = subprocess.Popen(
        [sys.executable, str(script), "held-by-this-test"], stdout=PIPE, text=True
    )
    try:
        port = int(holder.stdout.readline())
        with pytest.raises(PortInUse) as raised:
            check_port_free("127.0.0.1", port)
        message = str(raised.value)
        assert message.startswith(
            f"port {port} (127.0.0.1) is already in use by pid {holder.pid} ("
        )
        assert f"{script} held-by-this-test): stop it or pass another --port" in message
        assert "\n" not in message
    finally:
        holder.kill()
        holder.wait()
    # Its connections left in TIME_WAIT do not count: the next listener can bind the port.
    check_port_free("127.0.0.1", port)


# Listens on a free port, prints it, accepts one connection of its own and closes it first
# (which leaves the port with a connection in TIME_WAIT), then waits to be killed.
LISTENER = textwrap.dedent(
    """
    import socket, time

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()
    client.recv(1)
    client.close()
    print(port, flush=True)
    time.sleep(600)
    """
)


def test_haproxys_own_ports_come_from_a_range_nothing_else_hands_out(tmp_path):
    """Stats and metrics are bound seconds after they are picked, once Ray is up: a kernel
    ephemeral port could be taken by then (seen: 'cannot bind socket' and no ingress)."""
    import socket

    from app.config import Settings
    from app.runtime import serve_environment

    env = serve_environment(Settings(data_dir=tmp_path, serve_ingress="haproxy"), run_dir=tmp_path)
    ports = [int(env[f"RAY_SERVE_HAPROXY_{name}_PORT"]) for name in ("STATS", "METRICS")]
    assert all(20_000 <= p < 30_000 for p in ports), ports
    for port in ports:
        with socket.socket() as s:
            s.bind(("0.0.0.0", port))  # free on every interface


def test_a_local_ray_gives_its_haproxy_backends_ports_no_other_ray_here_uses(tmp_path):
    """Serve's defaults are every Ray's: a second Ray on the machine would share the fallback
    proxy's ports (SO_REUSEPORT) or bind a replica port the first one's HAProxy still routes
    to, and answer its callers."""
    from app.config import Settings
    from app.runtime import serve_environment

    settings = Settings(data_dir=tmp_path, serve_ingress="haproxy")
    env = serve_environment(settings, local=True, run_dir=tmp_path)
    names = [
        f"RAY_SERVE_{name}_{protocol}_PORT"
        for protocol in ("HTTP", "GRPC")
        for name in ("FALLBACK_PROXY", "DIRECT_INGRESS_MIN", "DIRECT_INGRESS_MAX")
    ]
    fallback_http, low_http, high_http, fallback_grpc, low_grpc, high_grpc = (
        int(env[name]) for name in names
    )
    # One block: each protocol's fallback proxy port, then its replicas' (MAX is exclusive).
    assert 60_999 < fallback_http < low_http < high_http == fallback_grpc < low_grpc < high_grpc
    assert high_grpc - fallback_http == 200 and high_grpc < 65_536
    assert high_http - low_http == high_grpc - low_grpc == 99
    # A Ray on a cluster node (`ray start`, jobs.serve_env) keeps Serve's documented defaults.
    assert not set(names) & set(serve_environment(settings, run_dir=tmp_path))


def test_a_block_where_anything_listens_is_skipped(tmp_path, monkeypatch):
    """Any listener in a block (another Ray's replica) rules the block out; the one block
    left free is the one handed out, and only once: it stays claimed while this process
    lives, as for a Ray whose replicas have not bound their ports yet."""
    import socket
    import tempfile

    from app.localservices import BACKEND_PORT_BLOCK, BACKEND_PORT_RANGE, backend_port_block

    # The claims' lock files of this test only: not those of any Ray running on the machine.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    starts = range(BACKEND_PORT_RANGE.start, BACKEND_PORT_RANGE.stop, BACKEND_PORT_BLOCK)
    free = starts[len(starts) // 2]
    held = []
    try:
        for start in starts:
            if start == free:
                continue
            s = socket.socket()
            s.bind(("0.0.0.0", start + BACKEND_PORT_BLOCK - 1))  # the block's last port
            s.listen()
            held.append(s)
        assert backend_port_block() == free
        with pytest.raises(OSError, match="every one is in use"):
            backend_port_block()
    finally:
        for s in held:
            s.close()
