"""The whole loop on two Ray nodes: a head and a worker that shares only what production shares.

Both nodes are started with the real `ray start` (token auth as the machine has it, every port
our own). The worker runs as root in a mount namespace of its own where the head's data
directory is an empty tmpfs, so whatever a replica, a training worker or a read task on it
needs from the head's disk is missing, as on another machine. What the nodes do share is the
production configuration of docs/cluster.md:

- Feast's registry: the SQL registry on PostgreSQL; the online store: Redis;
- MLflow: an `mlflow server` on PostgreSQL keeping the artifacts on its own disk (the head's
  data directory: the worker can only get them through the server);
- the source tables, offline snapshots, Ray Train's storage, the prediction log, the drift
  monitor's folder and the API keys: a folder both nodes mount (here a directory the worker's
  namespace leaves visible, standing for NFS).

Custom resources put the second Ray Train worker, every ingest read task and one of the two
Serve replicas on the worker node. Then the worker node is killed mid-traffic.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests
import yaml

from app.localservices import quiet_port, start_mlflow_server
from app.predictions.log import read_prediction_log
from app.predictions.schema import schema_for
from tests.utils import ROOT, wait_for
from tests.utils.datasets import german
from tests.utils.postgres import database_url, fresh_database, query
from tests.utils.raycluster import (
    VENV_BIN,
    Cluster,
    chain,
    kill_node,
    list_nodes,
    list_state,
    node_env,
    start_head,
    start_worker,
    submit,
    succeeded,
    teardown,
)
from tests.utils.serving import body

pytestmark = [pytest.mark.integration, pytest.mark.own_ray, pytest.mark.cluster]

# Each node offers one of these: two workers or replicas asking for 1 land one per node.
TRAIN_SLOT, REPLICA_SLOT = "credit_train_slot", "credit_replica_slot"
# Only the worker node has it: the ingest read tasks need it.
WORKER_ONLY = "credit_worker_node"
DECISIONS = 120


@dataclass
class Loop:
    cluster: Cluster
    shared: Path
    head_dir: Path
    registry_db: str
    head_node: str = ""
    worker_node: str = ""
    url: str = ""
    token: str = ""
    answered: set[str] = field(default_factory=set)  # request ids answered with 200

    def job(self, *entrypoint: str, env: dict[str, str] | None = None) -> str:
        return succeeded(submit(self.cluster, env or {}, *entrypoint))

    def post(self, i: int, timeout: float = 10) -> requests.Response:
        response = requests.post(
            f"{self.url}/v1/decisions",
            json=body(i, prefix="A"),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )
        if response.status_code == 200:
            self.answered.add(response.json()["request_id"])
        return response

    def readiness(self) -> dict | None:
        """GET /v1/status of whichever replica answers (the open /readyz says no more than
        ok or unavailable)."""
        try:
            return requests.get(
                f"{self.url}/v1/status",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=5,
            ).json()
        except (requests.RequestException, ValueError):
            return None


def production_settings(shared: Path, head_dir: Path, redis_port: int, registry: str, mlflow: str):
    """The settings docs/cluster.md gives for several machines, as every node's environment."""
    return {
        # Node-local: what a node writes for itself (Feast's rendered repo, logs, caches).
        "CREDIT_DATA_DIR": str(head_dir),
        # Shared storage, mounted by every node.
        "CREDIT_LOCAL_SOURCE_DIR": str(shared / "source"),
        "CREDIT_OFFLINE_DIR": str(shared / "offline"),
        "CREDIT_TRAIN_STORAGE": str(shared / "ray_results"),
        "CREDIT_PREDICTION_LOG_DIR": str(shared / "predictions"),
        "CREDIT_MONITOR_DIR": str(shared / "monitoring"),
        "CREDIT_API_KEYS_FILE": str(shared / "api_keys.json"),
        # Services every node reaches.
        "CREDIT_FEAST_REGISTRY": registry,
        "CREDIT_ONLINE_STORE": "redis",
        "CREDIT_REDIS_PORT": str(redis_port),
        "CREDIT_MLFLOW_TRACKING_URI": mlflow,
        # Placement: one training worker per node, the reads on the worker node.
        "CREDIT_TRAIN_WORKERS": "2",
        "CREDIT_TRAIN_WORKER_RESOURCES": json.dumps({TRAIN_SLOT: 1}),
        "CREDIT_INGEST_READ_RESOURCES": json.dumps({WORKER_ONLY: 1}),
        # A quick fit, and a live drift check after the first 100 decisions.
        "CREDIT_NUM_BOOST_ROUND": "200",
        "CREDIT_EARLY_STOPPING_ROUNDS": "20",
        "CREDIT_MONITOR_CHECK_ROWS": "100",
        "CREDIT_MONITOR_MIN_ROWS": "100",
        "CREDIT_MONITOR_CPU_BUDGET": "0",
    }


@pytest.fixture(scope="module")
def loop(tmp_path_factory, redis_service) -> Iterator[Loop]:
    if os.geteuid() != 0:
        pytest.skip("the worker node's own mount namespace (unshare --mount) needs root")
    base = tmp_path_factory.mktemp("cluster")
    shared, head_dir = base / "shared", base / "head"
    shared.mkdir()
    head_dir.mkdir()
    with fresh_database() as mlflow_db, fresh_database() as registry_db:
        server = start_mlflow_server(head_dir / "mlflow-server", database_url(mlflow_db))
        try:
            settings = production_settings(
                shared, head_dir, redis_service.port, database_url(registry_db), server.url
            )
            # The one HTTP proxy (see `deploy`) would otherwise send every request to the
            # replica on its own node while that one keeps up.
            env = node_env(**settings, RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING="0")
            cluster = start_head(env, num_cpus=2, resources={TRAIN_SLOT: 1, REPLICA_SLOT: 1})
            try:
                resources = {TRAIN_SLOT: 1, REPLICA_SLOT: 1, WORKER_ONLY: 100}
                start_worker(cluster, env, 2, resources, hidden=[head_dir])
                loop = Loop(cluster, shared, head_dir, registry_db)
                for node in list_nodes(cluster):
                    if node["is_head_node"]:
                        loop.head_node = node["node_id"]
                    else:
                        loop.worker_node = node["node_id"]
                yield loop
            finally:
                teardown(cluster)
        finally:
            server.stop()


def deploy(loop: Loop) -> None:
    """`serve deploy` of serve_config.yaml with the replicas spread over the two nodes."""
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    port = quiet_port()  # the cluster's processes meanwhile take ephemeral ports
    # The two nodes share one network namespace here, so only the head runs an HTTP proxy;
    # on separate machines EveryNode (the shipped value) serves on each.
    config["proxy_location"] = "HeadOnly"
    config["http_options"]["port"] = port
    config["grpc_options"]["port"] = quiet_port()  # not the shipped 9000: it may be taken
    deployment = config["applications"][0]["deployments"][0]
    deployment["ray_actor_options"]["resources"] = {REPLICA_SLOT: 1}
    deployment["user_config"]["alias_poll_seconds"] = 2
    path = loop.shared.parent / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    done = subprocess.run(
        [str(VENV_BIN / "serve"), "deploy", str(path), "--address", loop.cluster.dashboard_url],
        env=loop.cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    loop.url = f"http://127.0.0.1:{port}"


def answering_nodes(loop: Loop, want: set[str], timeout: float = 300) -> dict[str, dict]:
    """Poll /v1/status through the head's proxy until replicas on each of `want` answered ready;
    the latest answer of each node."""
    seen: dict[str, dict] = {}

    def all_ready() -> bool:
        health = loop.readiness()
        if health and health.get("status") == "ok":
            seen[health["node"]] = health
        return want <= set(seen)

    try:
        wait_for(all_ready, f"ready replicas on nodes {sorted(want)}", timeout, 0.3)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nlast: {loop.readiness()}\n{serve_status(loop)}") from None
    return seen


def serve_status(loop: Loop) -> str:
    """`serve status` and the tail of every replica's log, for a failure's message."""
    done = subprocess.run(
        [str(VENV_BIN / "serve"), "status", "--address", loop.cluster.dashboard_url],
        env=loop.cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    logs = [
        f"--- {path}\n{path.read_text(errors='replace')[-2000:]}"
        for node in (loop.cluster.head, *loop.cluster.workers)
        for path in (node.temp_dir / "session_latest" / "logs" / "serve").glob("replica_*.log")
    ]
    return "\n".join([done.stdout, done.stderr, *logs])


def gone(pid: int) -> bool:
    """No such process, or a zombie (killed, its parent not reaping it yet)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_loop_on_two_nodes(loop):
    # --- Data and training: jobs submitted to the head, reads and a training worker remote.
    token_file = loop.shared / "api_token"
    out = loop.job(
        *chain(
            "python -m jobs.seed --target local",
            "python -m jobs.ingest",
            "python -m jobs.materialize",
            "python -m jobs.train --no-baseline",
            f"python -m jobs.api_keys create --id cluster --token-file {token_file}",
        )
    )
    # The read tasks ran on the worker node only, and they read every row.
    assert "loan_applications      read     1,000  valid     1,000" in out
    reads = [t for t in list_state(loop.cluster, "tasks") if t["name"].startswith("Read")]
    assert reads and {t["node_id"] for t in reads} == {loop.worker_node}
    assert "materialized applicant_financials, applicant_profile (full from" in out
    # Two training workers, one on each node: rank 0 wrote its checkpoint from either node to
    # the shared storage, and the driver on the head read it back.
    assert "registered credit_risk v1 (aliases: champion)" in out
    workers = [a for a in list_state(loop.cluster, "actors") if a["class_name"] == "RayTrainWorker"]
    assert sorted(a["node_id"] for a in workers) == sorted([loop.head_node, loop.worker_node])
    assert list((loop.shared / "ray_results").iterdir())
    # The registry is in PostgreSQL, not a file on the head.
    views = query(loop.registry_db, "SELECT feature_view_name FROM feature_views")
    assert sorted(v for (v,) in views) == ["applicant_financials", "applicant_profile"]
    assert not list((loop.head_dir / "feast").glob("registry*.db"))
    loop.token = token_file.read_text().strip()

    # --- Serving: one replica per node; the worker's finds features, model and keys.
    deploy(loop)
    ready = answering_nodes(loop, {loop.head_node, loop.worker_node})
    assert {h["champion"] for h in ready.values()} == {"1"}
    for i in range(DECISIONS):
        response = loop.post(i)
        assert response.status_code == 200, response.text
    assert len(loop.answered) == DECISIONS

    # --- The head reads what both replicas logged, and the live monitor checked it.
    replicas = [
        actor
        for actor in list_state(loop.cluster, "actors")
        if actor["class_name"].startswith("ServeReplica:credit:") and actor["state"] == "ALIVE"
    ]
    assert sorted(r["node_id"] for r in replicas) == sorted([loop.head_node, loop.worker_node])
    # Each log file is named after its writer's host and pid: both replicas wrote to it.
    files = " ".join(p.name for p in (loop.shared / "predictions").rglob("*") if p.is_file())
    for replica in replicas:
        assert f"-{replica['pid']}-" in files, (replica, files)
    results = loop.shared / "monitoring" / "results"
    wait_for(lambda: list(results.glob("drift-*.json")) or None, "the live drift check", 120)
    (check,) = [json.loads(p.read_text()) for p in results.glob("drift-*.json")]
    assert check["rows"] >= 100 and check["model_version"] == "1"

    # --- Batch drift and the monitor's status on the head, then a promotion.
    out = loop.job(
        *chain(
            "python -m jobs.monitor drift --last-hours 1",
            "python -m jobs.monitor status",
            "python -m jobs.retrain --no-ingest --reason cluster-test",
            "python -m jobs.promote --force",
            "python -m jobs.score",
        ),
        # One worker: spreading over nodes was shown above; this saves the split's start-up.
        env={"CREDIT_TRAIN_WORKERS": "1"},
    )
    assert f": {DECISIONS} decisions vs " in out and "rows of champion v1" in out, out[-3000:]
    # The job found the detached monitor actor the replicas feed, with its check.
    status = json.loads(out[out.index("{\n") : out.index("\n}\n") + 2])
    assert status["status"]["checks"] >= 1 and status["latest"] is not None, status
    assert "retraining: cluster-test" in out
    assert "registered credit_risk v2 (challenger), test AUC" in out
    assert "champion: v2 (was v1)" in out
    assert "scored 1000 of 1000 rows with credit_risk v2" in out

    # --- The promotion reaches the replica on the worker node.
    def worker_replica_on_v2() -> bool:
        health = loop.readiness()
        return bool(health and health["node"] == loop.worker_node and health["champion"] == "2")

    wait_for(worker_replica_on_v2, "the worker node's replica to serve champion v2", 120, 0.3)

    # --- The worker node dies mid-traffic: the head's replica carries on.
    outcomes: list[tuple[float, int]] = []
    stop = threading.Event()

    def traffic() -> None:
        i = DECISIONS
        while not stop.is_set():
            try:
                status = loop.post(i).status_code
            except requests.RequestException:
                status = 0
            outcomes.append((time.monotonic(), status))
            i = (i + 1) % 1000

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    wait_for(lambda: len(outcomes) >= 40, "traffic before the kill", 60)
    killed = time.monotonic()
    kill_node(loop.cluster.workers[0])
    (remote,) = [r for r in replicas if r["node_id"] == loop.worker_node]
    wait_for(lambda: gone(remote["pid"]), "the worker node's replica to die with it", 10)

    def recovered() -> bool:
        after = [status for t, status in outcomes if t > killed]
        return len(after) >= 50 and all(s == 200 for s in after[-50:])

    wait_for(recovered, "50 answered decisions in a row after the kill", 180, 0.5)
    stop.set()
    sender.join(timeout=30)
    failed = [t for t, status in outcomes if t > killed and status != 200]
    recovery = (max(failed) - killed) if failed else 0.0
    after = sum(1 for t, _ in outcomes if t > killed)
    print(f"worker node killed: {len(failed)} of {after} requests after it failed, all answered "
          f"again after {recovery:.1f} s")  # fmt: skip
    ready = answering_nodes(loop, {loop.head_node}, 30)
    assert ready[loop.head_node]["champion"] == "2"

    # --- Every answered decision is in the log, the dead node's replica's included.
    logged = set(
        read_prediction_log(loop.shared / "predictions", schema_for(german()))
        .column("request_id")
        .to_pylist()
    )
    missing = loop.answered - logged
    assert not missing, f"{len(missing)} of {len(loop.answered)} answered decisions not logged"


def test_working_dir_upload_leaves_out_venv_and_var(loop):
    # Ray 2.60 skips .git and .venv by default and honours .gitignore (var/, *.egg-info):
    # what the head unpacked for the jobs is the project's source and data only.
    session = loop.cluster.head.temp_dir / "session_latest"
    unpacked = (session / "runtime_resources" / "working_dir_files").glob("_ray_pkg_*")
    packages = [p for p in unpacked if p.is_dir()]
    assert packages
    for package in packages:
        names = {p.name for p in package.iterdir()}
        assert {"app", "jobs", "data"} <= names
        assert not names & {".venv", "var", ".git", "credit_risk_ray.egg-info"}
        size = sum(f.stat().st_size for f in package.rglob("*") if f.is_file())
        assert size < 20 * 2**20, f"working dir package is {size / 2**20:.1f} MiB"


def test_a_failing_job_is_failed_with_its_one_line_error(loop, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = submit(
        loop.cluster,
        {"CREDIT_DATA_DIR": str(empty), "CREDIT_OFFLINE_DIR": str(empty / "offline")},
        "python", "-m", "jobs.materialize",
    )  # fmt: skip
    # The CLI exits 1 for any FAILED job; the job's own exit code is in the status message.
    assert done.returncode == 1, done.stdout[-5000:]
    assert "failed" in done.stdout
    assert "Job entrypoint command failed with exit code 2" in done.stdout
    assert "run `python -m jobs.ingest` first" in done.stdout
    assert "Traceback" not in done.stdout
