"""Ray clusters of our own, started with the real `ray start` (tests/integration/test_cluster.py).

Every port a node opens is chosen here (never 6379, held by Redis, nor any default another Ray on
the machine may hold), the temp dir is ours, and a node is stopped by killing only the processes
it started: never `ray stop`, which stops every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from app.localservices import free_port
from tests.utils import ROOT

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")
START_TIMEOUT = 240  # `ray start` took 45 s here with the machine's load average at 10
JOB_TIMEOUT = 900


@dataclass
class Node:
    process: subprocess.Popen  # `ray start --block`, leader of its own process group
    log_path: Path
    temp_dir: Path


@dataclass
class Cluster:
    head: Node
    temp_dir: Path
    dashboard_url: str
    gcs_address: str
    env: dict[str, str]
    workers: list[Node] = field(default_factory=list)


def worker_port_range(size: int = 200) -> tuple[int, int]:
    """A block of free ports below the kernel's ephemeral range (32768+), where outgoing
    connections never land: Ray's default 10002-19999 is shared with any other Ray here."""
    for base in range(21000, 31000, size):
        sockets = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                sockets.append(s)
                s.bind(("", port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base, base + size - 1
    raise RuntimeError("no free block of worker ports between 21000 and 31000")


def auth_mode() -> str:
    # Ray 2.60 turns token auth on by itself when ~/.ray/auth_token exists; server and every
    # client must agree, so say it explicitly for both.
    if "RAY_AUTH_MODE" in os.environ:
        return os.environ["RAY_AUTH_MODE"]
    return "token" if (Path.home() / ".ray" / "auth_token").exists() else "disabled"


def node_env(**extra: str) -> dict[str, str]:
    """The environment for `ray start` and its clients: the shell's without CREDIT_* and
    RAY_ADDRESS, the venv first on PATH (`ray job submit -- python ...` runs `python` from the
    PATH of the shell that started Ray), and one auth mode for all."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CREDIT_", "RAY_ADDRESS"))}
    return {
        **clean,
        "PATH": f"{VENV_BIN}{os.pathsep}{clean.get('PATH', '')}",
        "RAY_AUTH_MODE": auth_mode(),
        **extra,
    }


def _node_ports() -> list[str]:
    """Every port flag of `ray start` a node binds on this machine, each a free one."""
    min_worker, max_worker = worker_port_range()
    return [
        "--dashboard-agent-listen-port", str(free_port()),
        "--dashboard-agent-grpc-port", str(free_port()),
        "--runtime-env-agent-port", str(free_port()),
        "--metrics-export-port", str(free_port()),
        "--node-manager-port", str(free_port()),
        "--object-manager-port", str(free_port()),
        "--min-worker-port", str(min_worker),
        "--max-worker-port", str(max_worker),
    ]  # fmt: skip


def _launch(command: list[str], env: dict[str, str], temp_dir: Path) -> Node:
    log_path = temp_dir / "ray-start.log"
    with open(log_path, "wb") as log:
        # Its own session and process group: the daemons it starts stay in that group, so the
        # teardown signals exactly what this node started.
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Node(process, log_path, temp_dir)


def _start_head(env: dict[str, str], num_cpus: int, resources: dict[str, float]) -> Cluster:
    """One `ray start --head --block` on free ports; raises if it does not come up."""
    # Short: Ray's socket paths under the temp dir have a length limit.
    temp_dir = Path(tempfile.mkdtemp(prefix="rj_", dir="/tmp"))
    dashboard_port = free_port()
    command = [
        RAY, "start", "--head", "--block",
        "--port", str(free_port()),
        "--num-cpus", str(num_cpus),
        "--resources", json.dumps(resources),
        "--include-dashboard", "true",
        "--dashboard-host", "127.0.0.1",
        "--dashboard-port", str(dashboard_port),
        "--ray-client-server-port", str(free_port()),
        *_node_ports(),
        "--temp-dir", str(temp_dir),
        "--disable-usage-stats",
    ]  # fmt: skip
    head = _launch(command, env, temp_dir)
    cluster = Cluster(head, temp_dir, f"http://127.0.0.1:{dashboard_port}", "", env)
    deadline = time.monotonic() + START_TIMEOUT
    address_file = temp_dir / "ray_current_cluster"
    # `ray start` writes the GCS address there once every daemon is up.
    while not (address_file.exists() and address_file.read_text().strip()):
        if head.process.poll() is not None or time.monotonic() > deadline:
            log = head.log_path.read_text(errors="replace")[-1500:]
            teardown(cluster)
            raise RuntimeError(f"ray start failed:\n{log}")
        time.sleep(0.5)
    cluster.gcs_address = address_file.read_text().strip()
    return cluster


def start_head(env: dict[str, str], num_cpus: int = 2, resources: dict | None = None) -> Cluster:
    """The head node. `ray start` gives the raylet a fixed 30 s to register with the GCS
    (ray/_private/node.py); on a saturated machine it sometimes misses that ("The current node
    timed out during startup"), so up to three attempts, each on new ports and a new temp dir."""
    failures: list[str] = []
    while True:
        try:
            return _start_head(env, num_cpus, resources or {})
        except RuntimeError as exc:
            failures.append(str(exc))
            if len(failures) == 3:
                raise RuntimeError("\n\n".join(failures)) from None


def start_worker(
    cluster: Cluster,
    env: dict[str, str],
    num_cpus: int,
    resources: dict[str, float],
    hidden: list[Path],
) -> Node:
    """A worker node joining `cluster`, as root in a mount namespace of its own where each
    directory in `hidden` is an empty tmpfs: what the head keeps there, this node cannot see,
    as on another machine. Waits until the cluster counts it.

    It has a temp dir of its own, as on another machine: sharing the head's, its runtime-env
    agent would delete a job's working dir from under the head's driver once its own tasks
    of that job are done."""
    temp_dir = Path(tempfile.mkdtemp(prefix="rw_", dir="/tmp"))
    mounts = " && ".join(f'mount -t tmpfs -o size=256m tmpfs "{p}"' for p in hidden)
    command = [
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", f'{mounts} && exec "$@"', "sh",
        RAY, "start", "--block",
        "--address", cluster.gcs_address,
        "--num-cpus", str(num_cpus),
        "--resources", json.dumps(resources),
        *_node_ports(),
        "--temp-dir", str(temp_dir),
        "--disable-usage-stats",
    ]  # fmt: skip
    index = len(cluster.workers) + 1
    node = _launch(command, env, temp_dir)
    cluster.workers.append(node)
    deadline = time.monotonic() + START_TIMEOUT
    while alive_nodes(cluster) < 1 + index:
        if node.process.poll() is not None or time.monotonic() > deadline:
            log = node.log_path.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"ray start of worker node {index} failed:\n{log}")
        time.sleep(1)
    return node


def alive_nodes(cluster: Cluster) -> int:
    return sum(1 for n in list_nodes(cluster) if n["state"] == "ALIVE")


def list_nodes(cluster: Cluster) -> list[dict]:
    """`ray list nodes` of the cluster (the State API through the dashboard); [] if it fails."""
    try:
        return list_state(cluster, "nodes")
    except RuntimeError:
        return []


def list_state(cluster: Cluster, kind: str) -> list[dict]:
    """`ray list <kind>` (nodes, actors, tasks, ...) of the cluster, every entry."""
    return ray_list(cluster.dashboard_url, kind, cluster.env)


def ray_list(dashboard_url: str, kind: str, env: dict[str, str] | None = None) -> list[dict]:
    """`ray list <kind>` of the Ray whose dashboard (State API) is at `dashboard_url`."""
    done = subprocess.run(
        [RAY, "list", kind, "--address", dashboard_url, "--format", "json", "--limit", "10000"],
        env=env or node_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ray list {kind} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout)


def _ours(temp_dirs: list[Path]) -> list[psutil.Process]:
    """Live processes whose command line names one of our temp dirs (workers rename
    themselves, so this finds the daemons, not every worker)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.info["cmdline"] or [])
            if any(str(temp_dir) in cmdline for temp_dir in temp_dirs):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _tree(process: subprocess.Popen) -> dict[int, psutil.Process]:
    tracked: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(process.pid)
        for proc in [root, *root.children(recursive=True)]:
            tracked[proc.pid] = proc
    return tracked


def kill_node(node: Node) -> None:
    """SIGKILL a node's whole process tree at once, as a machine that loses power: no
    graceful shutdown of its raylet, workers or replicas."""
    tracked = _tree(node.process)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.process.pid, signal.SIGKILL)
    for proc in _running(tracked.values()):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    node.process.wait(timeout=30)


def _stop(processes: list[subprocess.Popen], temp_dirs: list[Path]) -> None:
    """SIGTERM our `ray start --block` groups, then SIGKILL whatever of ours is left.

    Workers and job drivers may sit in process groups of their own, so the set to stop is the
    whole process tree of each `ray start` plus anything naming our temp dir, taken before any
    signal (a killed raylet's workers are re-parented and would no longer be found).
    """
    tracked: dict[int, psutil.Process] = {}
    for process in processes:
        tracked |= _tree(process)
    for proc in _ours(temp_dirs):
        tracked[proc.pid] = proc
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    # `ray start --block` stops its daemons one after another with grace periods (35 s here);
    # nothing of a test cluster needs a clean shutdown, so SIGKILL what is left after 2 s.
    deadline = time.monotonic() + 2
    while _running(tracked.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for proc in _running(tracked.values()):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    for process in processes:
        process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _running(tracked.values()) and time.monotonic() < deadline:
        time.sleep(0.2)


def listening(ports: set[int]) -> dict[int, int | None]:
    """Which of `ports` something listens on (any address), and its pid where visible."""
    return {
        c.laddr.port: c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port in ports
    }


def naming(path: Path) -> list[psutil.Process]:
    """Live processes with an argument in `path` (HAProxy's -f names its config)."""
    prefix = f"{path}{os.sep}"
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        args = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(a.startswith(prefix) for a in args):
            found.append(proc)
    return found


def _running(procs) -> list[psutil.Process]:
    """Those still running (a zombie is done: its parent, maybe init, has yet to reap it)."""
    running = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                running.append(proc)
    return running


def teardown(cluster: Cluster) -> None:
    # Workers first: a worker whose head went away first spends its time reconnecting.
    nodes = [*cluster.workers, cluster.head]
    temp_dirs = [n.temp_dir for n in nodes]
    _stop([n.process for n in nodes], temp_dirs)
    leftovers = _ours(temp_dirs)
    for temp_dir in temp_dirs:
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not leftovers, f"processes of our Ray still running: {leftovers}"


def submit(
    cluster: Cluster, env_vars: dict[str, str], *entrypoint: str, timeout: float = JOB_TIMEOUT
) -> subprocess.CompletedProcess:
    """`ray job submit --working-dir . -- <entrypoint>`: waits for the job, streams its logs,
    exits 0 if it SUCCEEDED and 1 if it FAILED."""
    # Actors that look the cluster up themselves (Ray Train V2's placement-group cleaner)
    # otherwise find two Rays on a machine running another one and give up.
    runtime_env = {"env_vars": {**env_vars, "RAY_ADDRESS": cluster.gcs_address}}
    command = [
        RAY, "job", "submit",
        "--address", cluster.dashboard_url,
        "--working-dir", ".",
        "--runtime-env-json", json.dumps(runtime_env),
        "--", *entrypoint,
    ]  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        # The job agent registers a moment after `ray start` returns.
        if "No available agent to submit job" not in done.stdout or time.monotonic() > deadline:
            return done


def succeeded(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stdout[-5000:]
    assert "' succeeded" in done.stdout  # the CLI's closing "Job 'raysubmit_...' succeeded"
    return done.stdout


def chain(*commands: str) -> tuple[str, ...]:
    """Several entrypoints in one job: one upload and one driver start-up instead of one each
    (a separate upload per job proves nothing the first does not)."""
    return ("bash", "-c", " && ".join(commands))
