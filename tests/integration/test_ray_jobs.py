"""Every job through the real `ray job submit` CLI against a real `ray start --head` of our own.

The cluster is private to this module: every port it opens is chosen here (never 6379, held by
Redis, nor any default another Ray on the machine may hold), its temp dir is ours, and it is
stopped by killing only the processes it started. It is not the session's `ray_session`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from app.localservices import free_port
from tests.utils import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")
START_TIMEOUT = 240  # `ray start` took 45 s here with the machine's load average at 10
JOB_TIMEOUT = 900

# Serving starts the drift monitor with its first decision; `jobs.monitor status` reports on it.
# Without Serve here, this job starts it the same way (`get_or_create_monitor`).
START_MONITOR = (
    "python",
    "-c",
    "import ray; from app.config import load_settings; "
    "from app.monitoring.monitor import get_or_create_monitor; ray.init(); "
    "print(ray.get(get_or_create_monitor(load_settings()).status.remote(), timeout=120))",
)


@dataclass
class Cluster:
    process: subprocess.Popen
    temp_dir: Path
    dashboard_url: str
    gcs_address: str
    env: dict[str, str]


def _worker_port_range(size: int = 200) -> tuple[int, int]:
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


def _auth_mode() -> str:
    # Ray 2.60 turns token auth on by itself when ~/.ray/auth_token exists; server and every
    # client must agree, so say it explicitly for both.
    if "RAY_AUTH_MODE" in os.environ:
        return os.environ["RAY_AUTH_MODE"]
    return "token" if (Path.home() / ".ray" / "auth_token").exists() else "disabled"


def _ours(temp_dir: Path) -> list[psutil.Process]:
    """Live processes whose command line names our temp dir (workers rename themselves,
    so this finds the daemons, not every worker)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if str(temp_dir) in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _stop(process: subprocess.Popen, temp_dir: Path) -> None:
    """SIGTERM our `ray start --block` group, then SIGKILL whatever of ours is left.

    Workers and job drivers may sit in process groups of their own, so the set to stop is the
    whole process tree of `ray start` plus anything naming our temp dir, taken before any
    signal (a killed raylet's workers are re-parented and would no longer be found).
    """
    tracked: dict[int, psutil.Process] = {}
    try:
        root = psutil.Process(process.pid)
        for proc in [root, *root.children(recursive=True)]:
            tracked[proc.pid] = proc
    except psutil.NoSuchProcess:
        pass
    for proc in _ours(temp_dir):
        tracked[proc.pid] = proc
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
    process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _running(tracked.values()) and time.monotonic() < deadline:
        time.sleep(0.2)


def _running(procs) -> list[psutil.Process]:
    """Those still running (a zombie is done: its parent, maybe init, has yet to reap it)."""
    running = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                running.append(proc)
    return running


def _start_head(env: dict[str, str]) -> Cluster:
    """One `ray start --head --block` on free ports; raises if it does not come up."""
    # Short: Ray's socket paths under the temp dir have a length limit.
    temp_dir = Path(tempfile.mkdtemp(prefix="rj_", dir="/tmp"))
    dashboard_port = free_port()
    min_worker, max_worker = _worker_port_range()
    command = [
        RAY, "start", "--head", "--block",
        "--port", str(free_port()),
        "--num-cpus", "2",
        "--include-dashboard", "true",
        "--dashboard-host", "127.0.0.1",
        "--dashboard-port", str(dashboard_port),
        "--dashboard-agent-listen-port", str(free_port()),
        "--dashboard-agent-grpc-port", str(free_port()),
        "--runtime-env-agent-port", str(free_port()),
        "--metrics-export-port", str(free_port()),
        "--node-manager-port", str(free_port()),
        "--object-manager-port", str(free_port()),
        "--ray-client-server-port", str(free_port()),
        "--min-worker-port", str(min_worker),
        "--max-worker-port", str(max_worker),
        "--temp-dir", str(temp_dir),
        "--disable-usage-stats",
    ]  # fmt: skip
    log_path = temp_dir / "ray-start.log"
    with open(log_path, "wb") as log:
        # Its own session and process group: the daemons it starts stay in that group, so the
        # teardown signals exactly what this fixture started.
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    cluster = Cluster(process, temp_dir, f"http://127.0.0.1:{dashboard_port}", "", env)
    deadline = time.monotonic() + START_TIMEOUT
    address_file = temp_dir / "ray_current_cluster"
    # `ray start` writes the GCS address there once every daemon is up.
    while not (address_file.exists() and address_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            log = log_path.read_text(errors="replace")[-1500:]
            _teardown(cluster)
            raise RuntimeError(f"ray start failed:\n{log}")
        time.sleep(0.5)
    cluster.gcs_address = address_file.read_text().strip()
    return cluster


def _teardown(cluster: Cluster) -> None:
    _stop(cluster.process, cluster.temp_dir)
    leftovers = _ours(cluster.temp_dir)
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    assert not leftovers, f"processes of our Ray still running: {leftovers}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CREDIT_", "RAY_ADDRESS"))}
    # `ray job submit -- python ...` runs `python` from the PATH of the shell that started Ray.
    env = {
        **clean,
        "PATH": f"{VENV_BIN}{os.pathsep}{clean.get('PATH', '')}",
        "RAY_AUTH_MODE": _auth_mode(),
    }
    # `ray start` gives the raylet a fixed 30 s to register with the GCS (ray/_private/node.py);
    # on a saturated machine it sometimes misses that ("The current node timed out during
    # startup"), so up to three attempts, each on new ports and a new temp dir.
    failures: list[str] = []
    while True:
        try:
            started = _start_head(env)
            break
        except RuntimeError as exc:
            failures.append(str(exc))
            if len(failures) == 3:
                raise RuntimeError("\n\n".join(failures)) from None
    try:
        yield started
    finally:
        _teardown(started)


def submit(cluster: Cluster, data_dir: Path, *entrypoint: str) -> subprocess.CompletedProcess:
    """`ray job submit --working-dir . -- <entrypoint>`: waits for the job, streams its logs,
    exits 0 if it SUCCEEDED and 1 if it FAILED."""
    runtime_env = {
        "env_vars": {
            "CREDIT_DATA_DIR": str(data_dir),  # absolute: the job runs in a copy of `.`
            "CREDIT_TRAIN_WORKERS": "1",
            "CREDIT_NUM_BOOST_ROUND": "200",
            "CREDIT_EARLY_STOPPING_ROUNDS": "20",
            "CREDIT_MONITOR_CPUS": "0",
            # Actors that look the cluster up themselves (Ray Train V2's placement-group
            # cleaner) otherwise find two Rays on a machine running another one and give up.
            "RAY_ADDRESS": cluster.gcs_address,
        }
    }
    command = [
        RAY, "job", "submit",
        "--address", cluster.dashboard_url,
        "--working-dir", ".",
        "--runtime-env-json", json.dumps(runtime_env),
        "--", *entrypoint,
    ]  # fmt: skip
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=JOB_TIMEOUT,
        )
        # The job agent registers a moment after `ray start` returns.
        if "No available agent to submit job" not in done.stdout or time.monotonic() > deadline:
            return done


def succeeded(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stdout[-5000:]
    assert "' succeeded" in done.stdout  # the CLI's closing "Job 'raysubmit_...' succeeded"
    return done.stdout


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ray_jobs") / "data"


def chain(*commands: str) -> tuple[str, ...]:
    """Several entrypoints in one job: one upload and one driver start-up instead of one each
    (a separate upload per job proves nothing the first does not)."""
    return ("bash", "-c", " && ".join(commands))


def test_seed_ingest_materialize(cluster, data_dir):
    out = succeeded(
        submit(
            cluster,
            data_dir,
            *chain(
                "python -m jobs.seed --target local",
                "python -m jobs.ingest",
                "python -m jobs.materialize",
            ),
        )
    )
    assert "seeded loan_applications: 1,000 rows" in out
    assert (data_dir / "source").is_dir()
    assert "loan_applications      read     1,000  valid     1,000" in out
    assert "snapshot " in out
    assert (data_dir / "offline" / "current").exists()
    assert "materialized applicant_financials, applicant_profile (full from" in out


def test_working_dir_upload_leaves_out_venv_and_var(cluster):
    # Ray 2.60 skips .git and .venv by default and honours .gitignore (var/, *.egg-info):
    # what the node unpacked for the jobs so far is the project's source and data only.
    resources = cluster.temp_dir / "session_latest" / "runtime_resources" / "working_dir_files"
    packages = [p for p in resources.glob("_ray_pkg_*") if p.is_dir()]
    assert packages
    for package in packages:
        names = {p.name for p in package.iterdir()}
        assert {"app", "jobs", "data"} <= names
        assert not names & {".venv", "var", ".git", "credit_risk_ray.egg-info"}
        size = sum(f.stat().st_size for f in package.rglob("*") if f.is_file())
        assert size < 20 * 2**20, f"working dir package is {size / 2**20:.1f} MiB"


def test_train_promote_score_and_retrain(cluster, data_dir):
    out = succeeded(
        submit(
            cluster,
            data_dir,
            *chain(
                "python -m jobs.train --no-baseline",
                "python -m jobs.promote --history",
                "python -m jobs.score",
                "python -m jobs.retrain --no-ingest --reason ray-jobs-test",
            ),
        )
    )
    assert "registered credit_risk v1 (aliases: champion)" in out
    assert "Found multiple active Ray instances" not in out
    assert "champion: v- -> v1" in out
    assert "scored 1000 of 1000 rows with credit_risk v1" in out
    (decisions,) = (data_dir / "scores").glob("*.parquet")
    table = pq.read_table(decisions)
    assert table.num_rows == 1000
    assert set(table.column("decision").to_pylist()) <= {"approve", "decline"}
    assert "retraining: ray-jobs-test" in out
    assert "registered credit_risk v2 (challenger), test AUC" in out


def test_monitor_status(cluster, data_dir):
    started = succeeded(submit(cluster, data_dir, *START_MONITOR))
    pid = int(re.search(r"'pid': (\d+)", started).group(1))
    out = succeeded(submit(cluster, data_dir, "python", "-m", "jobs.monitor", "status"))
    lines = out.splitlines()
    start = lines.index("{")
    status = json.loads("\n".join(lines[start : lines.index("}", start) + 1]))
    # The job found the detached actor another job started: same process, nothing seen yet.
    assert status["status"]["pid"] == pid
    assert status["status"]["received_rows"] == 0
    assert status["status"]["checks"] == 0
    assert status["latest"] is None


def test_a_failing_job_is_failed_with_its_one_line_error(cluster, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = submit(cluster, empty, "python", "-m", "jobs.materialize")
    # The CLI exits 1 for any FAILED job; the job's own exit code is in the status message.
    assert done.returncode == 1, done.stdout[-5000:]
    assert "failed" in done.stdout
    assert "Job entrypoint command failed with exit code 2" in done.stdout
    assert "run `python -m jobs.ingest` first" in done.stdout
    assert "Traceback" not in done.stdout
