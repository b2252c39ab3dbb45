"""The jobs as a user runs them: exit codes, one-line errors, the main pipeline end to end."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
import tritonclient.grpc as triton_grpc

from app.predictions.log import read_prediction_log
from app.predictions.schema import schema_for
from tests.utils import ROOT, quiet_port, run_job, wait_for
from tests.utils.datasets import german
from tests.utils.raycluster import auth_mode, listening, naming, ray_list
from tests.utils.serving import application

pytestmark = pytest.mark.integration


def test_ingest_without_a_source_exits_2_with_one_line(tmp_path):
    done = run_job("jobs.ingest", env={"CREDIT_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("error: local source table 'applicant_profile' not found")
    )


def test_bad_setting_exits_2_naming_it(tmp_path):
    done = run_job(
        "jobs.ingest", env={"CREDIT_DATA_DIR": str(tmp_path), "CREDIT_ONLINE_STORE": "memcached"}
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "error: invalid settings: online_store" in done.stderr


def test_materialize_before_ingest_says_what_to_run(tmp_path):
    done = run_job("jobs.materialize", env={"CREDIT_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "run `python -m jobs.ingest` first" in done.stderr


def test_snowflake_without_credentials_names_the_settings(tmp_path):
    done = run_job(
        "jobs.ingest", env={"CREDIT_DATA_DIR": str(tmp_path), "CREDIT_SOURCE": "snowflake"}
    )
    assert done.returncode == 2
    assert "CREDIT_SNOWFLAKE_ACCOUNT" in done.stderr
    assert "Traceback" not in done.stderr


TRAIN_ACTORS = {"TrainController", "DatasetManager", "SplitCoordinator"}


@dataclass
class KeptServing:
    """The main job with --keep-serving, as a service manager runs it: in a process group of
    its own (what a supervisor kills), its output read as it comes."""

    process: subprocess.Popen
    lines: list[str]
    errors: list[str]
    readers: list[threading.Thread]

    @property
    def stdout(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        """SIGKILL of the job's process group, as an OOM kill or a supervisor's timeout."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def finish(self) -> subprocess.CompletedProcess:
        if self.process.poll() is None:
            self.kill()
        for reader in self.readers:
            reader.join(timeout=30)
        return subprocess.CompletedProcess(
            self.process.args, self.process.returncode, self.stdout, "".join(self.errors)
        )


def keep_serving(port: str, grpc: str, env: dict[str, str], decisions: int) -> KeptServing:
    """The main job, once it serves (HTTP on `port`, gRPC on `grpc`)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")}
    command = ["jobs.pipeline", "--port", port, "--grpc-port", grpc, "--decisions", str(decisions)]
    command.append("--keep-serving")
    process = subprocess.Popen(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    job = KeptServing(process, [], [], [])
    job.readers = [
        threading.Thread(target=job.lines.extend, args=(process.stdout,), daemon=True),
        threading.Thread(target=job.errors.extend, args=(process.stderr,), daemon=True),
    ]
    for reader in job.readers:
        reader.start()
    try:
        wait_for(
            lambda: process.poll() is not None or "serving at" in job.stdout,
            "the main job to serve",
            600,
            0.5,
        )
        assert process.poll() is None, "".join(job.errors)[-3000:]
    except BaseException:
        job.finish()
        raise
    return job


# Serve's own defaults (Ray 2.60): the replicas' HTTP and gRPC ranges, the fallback proxy's.
SERVE_DEFAULT_PORTS = {*range(30_000, 31_001), *range(40_000, 41_001), 8500, 9500}


def serve_listeners(root: int, actor: str) -> tuple[int, set[int], dict[str, str]]:
    """How many processes of Serve's `actor` (ServeReplica, ProxyActor) run in the Ray under
    process `root`, every port they listen on, and their environment."""
    processes = [
        p
        for p in psutil.Process(root).children(recursive=True)
        if " ".join(p.cmdline()).startswith(f"ray::{actor}")
    ]
    ports = {
        c.laddr.port
        for process in processes
        for c in process.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN
    }
    return len(processes), ports, processes[0].environ() if processes else {}


def ingress(port: str, grpc: str) -> tuple[psutil.Process, set[int], Path]:
    """The HAProxy serving `port`, every port it listens on (the service's HTTP and gRPC,
    stats and metrics) and its run dir (its config is <run dir>/<node id>/haproxy.cfg), once
    one holds them all.

    Serve soft-reloads its ingress whenever the replicas change (a new process takes the
    sockets, the old one drains and exits), so one look can catch a process on its way out:
    look again until the newest listener is alive and listens on all three ports."""
    return wait_for(lambda: _ingress_now(port, grpc), f"one HAProxy listening on {port}", 60)


def _ingress_now(port: str, grpc: str) -> tuple[psutil.Process, set[int], Path] | None:
    try:
        # The newest: a process a reload replaced may still hold the socket while it drains.
        haproxy = max(
            (
                psutil.Process(c.pid)
                for c in psutil.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == int(port) and c.pid
            ),
            key=psutil.Process.create_time,
            default=None,
        )
        if haproxy is None:
            return None
        assert haproxy.name() == "haproxy", haproxy.cmdline()
        environment = haproxy.environ()
        ports = {
            int(port),
            int(grpc),
            int(environment["RAY_SERVE_HAPROXY_STATS_PORT"]),
            int(environment["RAY_SERVE_HAPROXY_METRICS_PORT"]),
        }
        listens = haproxy.net_connections("tcp")
        args = haproxy.cmdline()
    except psutil.NoSuchProcess:  # replaced by a reload between two looks
        return None
    if {c.laddr.port for c in listens if c.status == psutil.CONN_LISTEN} != ports:
        return None  # a reload in progress: the new process has not taken every socket yet
    return haproxy, ports, Path(args[args.index("-f") + 1]).parents[1]


@pytest.mark.own_ray
def test_main_pipeline_runs_end_to_end_and_again(tmp_path):
    """The main job kept serving and stopped with SIGTERM; run again on the same port, serving
    from a soft-reloaded ingress, and killed (SIGKILL of its process group): nothing of it
    keeps listening; a third start on a port something else holds names it and stops."""
    # The State API client below and the job's Ray agree on token auth.
    env = {"CREDIT_DATA_DIR": str(tmp_path), "RAY_AUTH_MODE": auth_mode()}
    port, grpc = str(quiet_port()), str(quiet_port())  # see quiet_port: Ray starts first
    job = keep_serving(port, grpc, env, 120)
    try:
        url = f"http://127.0.0.1:{port}/v1/decisions"
        payload = {"applicant_id": "A0000001", "application": application(0)}
        assert requests.post(url, json=payload, timeout=30).status_code == 401
        token = (tmp_path / "api_token").read_text().strip()
        assert oct((tmp_path / "api_token").stat().st_mode & 0o777) == "0o600"
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.post(url, json=payload, headers=auth, timeout=30).status_code == 200
        # The same app over gRPC (the Open Inference Protocol), with the same key.
        with triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc}") as client:
            metadata = {"authorization": f"Bearer {token}"}
            assert client.get_model_metadata("credit_risk", headers=metadata).name == "credit_risk"
        # HAProxy's backends (the replicas, the fallback proxy) listen in a block of ports of
        # their own, not on Serve's defaults, which every Ray on a machine uses alike
        # (app.localservices.BACKEND_PORT_RANGE says why).
        replicas, ports, ray_env = serve_listeners(job.process.pid, "ServeReplica")
        fallback = int(ray_env["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"])
        block = set(range(fallback, int(ray_env["RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT"])))
        assert len(block) == 200 and not block & SERVE_DEFAULT_PORTS, sorted(block)[:3]
        # (A replica, a Ray worker, also listens on ports of its own outside the block.)
        assert replicas == 2 and len(ports & block) == 4, (ports, sorted(block)[:3])
        _, proxy_ports, _ = serve_listeners(job.process.pid, "ProxyActor")
        assert {fallback, int(ray_env["RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"])} <= proxy_ports
        # The train stage's actors ran (listed dead) and none outlived the stage.
        dashboard = re.search(r"Ray dashboard (http://[\d.:]+)\)", job.stdout).group(1)
        actors = [a for a in ray_list(dashboard, "actors") if a["class_name"] in TRAIN_ACTORS]
        assert {a["class_name"] for a in actors} == TRAIN_ACTORS
        assert [a for a in actors if a["state"] != "DEAD"] == []
        _, _, run_dir = ingress(port, grpc)
        job.process.send_signal(signal.SIGTERM)
        job.process.wait(timeout=120)
    finally:
        first = job.finish()
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Traceback" not in first.stderr, first.stderr[-3000:]
    assert "API key created, token in" in first.stdout
    assert "Summary" in first.stdout
    assert "19 features for A0000001 from the online store" in first.stdout
    assert "full load of applicant_financials, applicant_profile" in first.stdout
    assert "credit_risk v1 (champion), test AUC" in first.stdout
    # The champion's model card, as logged to its run, written out and named.
    card = tmp_path / "model_cards" / "v1" / "card.html"
    assert f"model card: {card}" in first.stdout and "<h1" in card.read_text()
    served = f"app 'credit' at http://127.0.0.1:{port} and gRPC 127.0.0.1:{grpc} (2 replicas)"
    assert f"{served}, champion v1" in first.stdout
    assert f"gRPC (V2)         127.0.0.1:{grpc}" in first.stdout  # under "Where to look"
    assert "120/120 answered" in first.stdout
    # The decisions reached the live drift monitor and it checked them against training data.
    assert "over 120 decisions vs champion v1's training data" in first.stdout
    reports = list((tmp_path / "monitoring" / "reports").glob("drift-*.html"))
    assert len(reports) == 1
    assert "Serve app, drift monitor and the local Ray stopped" in first.stdout
    assert (tmp_path / "monitoring" / "report.html").is_file()
    assert f"written to {tmp_path / 'monitoring' / 'report.html'}" in first.stdout
    # Only the job's own lines on the terminal; Ray's and the libraries' output in the log.
    assert not [line for line in first.stdout.splitlines() if "INFO" in line or "pid=" in line]
    assert "Warning" not in first.stdout + first.stderr
    (log_path,) = (tmp_path / "logs").glob("pipeline-*.log")
    assert f"full log          {log_path}" in first.stdout
    assert "Started a local Ray instance" in log_path.read_text()
    # Every answered decision is in the prediction log once the app has shut down cleanly.
    log = read_prediction_log(tmp_path / "predictions", schema_for(german())).to_pandas()
    assert len(log) == 121  # the 120 of the job and the one sent above
    assert set(log["caller"]) == {"local"}
    assert not run_dir.exists() and naming(run_dir) == []

    # The re-run's data stages are what idempotence is about. It serves on the same port,
    # from an ingress Serve has soft-reloaded (`haproxy ... -sf <old pid>`, as on every change
    # of replicas), and is killed as a supervisor or the OOM killer would.
    # (Without the drift monitor, checked above: ~10 s less.)
    job = keep_serving(port, grpc, {**env, "CREDIT_MONITOR_ENABLED": "false"}, 20)
    try:
        haproxy, ports, run_dir = ingress(port, grpc)
        assert "-sf" in haproxy.cmdline()
        killed = time.monotonic()
        job.kill()
        wait_for(lambda: not listening(ports), "no listener on the killed job's ports", 60, 0.1)
        freed = time.monotonic() - killed
        wait_for(
            lambda: not run_dir.exists() and naming(run_dir) == [],
            "the killed job's ingress and run dir gone",
            60,
            0.1,
        )
    finally:
        second = job.finish()
    print(f"the killed job's ports were free {freed:.1f} s after the SIGKILL")
    assert second.returncode == -signal.SIGKILL
    assert "using existing tables" in second.stdout
    assert "incremental load" in second.stdout
    assert "champion v1 was trained on snapshot" in second.stdout

    def snapshot_ids(out: str) -> list[str]:
        return [line.split()[1] for line in out.splitlines() if line.startswith("snapshot ")]

    # Same input, same snapshot: re-running is idempotent.
    assert snapshot_ids(first.stdout) == snapshot_ids(second.stdout) != []

    # A port something else holds: named in one line before any work.
    with socket.create_server(("127.0.0.1", int(port))):
        third = run_job("jobs.pipeline", "--port", port, env=env, timeout=120)
    assert third.returncode == 2, third.stderr[-3000:]
    assert (
        third.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: port {port} (127.0.0.1) is already in use by pid {os.getpid()} (")
    )
    assert "==>" not in third.stdout
