"""Ours, the decision service on Ray Serve, as the serving and soak benchmarks run it: the
booster as the champion in the run's MLflow, the child driver (peers/ours_driver.py) that
serves the app on its own local Ray, and what its drift monitor did."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from app.localservices import free_port
from app.waiting import poll
from benchmarks.harness.machine import Proc, sample
from benchmarks.harness.procs import ROOT, ServiceProcess, child_env, http
from benchmarks.harness.variants import DIRECT_PORTS, OursVariant, ingress_env, ingress_of
from benchmarks.harness.workload import Workload, check_answer, ours_body

OURS_IMPORT_PATH = "app.serving.app:build_app"
ROUTE = "/v1/decisions"
APP_NAME = "credit-decisions"
DRIVER = ROOT / "benchmarks" / "peers" / "ours_driver.py"
# Ray Serve's own processes: what ours' RSS counts (the rest of the Ray tree is reported apart).
SERVE_TITLES = (
    "ray::ServeController",
    "ray::ProxyActor",
    "ray::ServeReplica",
    "ray::HAProxyManager",
)


def is_serve_process(proc: Proc) -> bool:
    return proc.title.startswith(SERVE_TITLES) or proc.program == "haproxy"


def register_champion(workload: Workload) -> None:
    """The booster as a version of the registered model in the run's MLflow, aliased
    champion, its run carrying the drift reference (so the monitor really checks)."""
    import mlflow

    from app.data.snapshot import current_snapshot
    from app.domain import CHAMPION
    from app.training import registry
    from app.training.model import CreditModel
    from app.training.pyfunc import ARTIFACT_KEY, CreditRiskPyfunc, pip_requirements
    from app.training.reference import log_reference

    started, settings = time.perf_counter(), workload.settings
    client = registry.client(settings)
    experiment = registry.experiment_id(settings, client)
    with mlflow.start_run(experiment_id=experiment, run_name="bench-serving"):
        model = CreditModel.load(workload.model_dir)
        source = current_snapshot(settings.offline_dir)
        log_reference(mlflow, model, workload.train_frame, workload.snapshot_id, source)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=CreditRiskPyfunc(),
            artifacts={ARTIFACT_KEY: str(workload.model_dir)},
            pip_requirements=pip_requirements(),
            code_paths=[str(ROOT / "app")],
        )
    # Through the registry module, so the version carries the artifact digest serving checks.
    version = registry.register_version(settings, client, info.model_uri, {}, "serving benchmark")
    registry.move_alias(
        client, settings.model_name, CHAMPION, version, "promote", "serving benchmark"
    )
    seconds = time.perf_counter() - started
    print(
        f"registered the booster as {settings.model_name} v{version} ({CHAMPION}, {seconds:.1f} s)"
    )


def app_args(
    workload: Workload, monitor_dir: Path | None = None, cpus: float | None = None
) -> dict:
    """`build_app`'s args (and the floor's settings): the run's data dir (Feast registry,
    MLflow with the champion), the private Redis, the drift monitor's own directory and CPUs."""
    overrides: dict[str, Any] = {
        "data_dir": str(workload.settings.data_dir),
        "online_store": "redis",
        "redis_host": "127.0.0.1",
        "redis_port": workload.redis_port,
    }
    overrides |= {"monitor_dir": str(monitor_dir)} if monitor_dir else {}
    overrides |= {"monitor_cpus": cpus} if cpus is not None else {}
    return {"settings": overrides}


def serve_config_options(path: Path, as_deployed: bool = False) -> dict[str, Any]:
    """Deployment.options of the config's first deployment; unless `as_deployed`, autoscaling
    replaced by its min_replicas as a fixed num_replicas (the same replicas in every run)."""
    import yaml

    deployment = dict(yaml.safe_load(path.read_text())["applications"][0]["deployments"][0])
    if not as_deployed:
        autoscaling = deployment.pop("autoscaling_config", None) or {}
        deployment.setdefault("num_replicas", autoscaling.get("min_replicas", 1))
    return deployment


def monitor_cpus(options: dict[str, Any], num_cpus: int) -> float | None:
    """0 when the replicas leave no room in the local Ray for the monitor's default
    reservation (it could never be scheduled: no check would run), else the default."""
    from app.config import Settings

    replica_cpus = options.get("ray_actor_options", {}).get("num_cpus", 1)
    reserved = options.get("num_replicas", 1) * replica_cpus
    default = Settings.model_fields["monitor_cpus"].default
    if reserved + default <= num_cpus:
        return None
    print(f"  drift monitor: monitor_cpus 0 (replicas reserve {reserved:g} of {num_cpus} CPUs)")
    return 0.0


def grpc_options(path: Path) -> dict[str, Any] | None:
    """The config's grpc_options (the Open Inference Protocol's gRPC service) on a free port,
    None when it has none."""
    import yaml

    options = yaml.safe_load(path.read_text()).get("grpc_options") or {}
    return {**options, "port": free_port()} if options.get("grpc_servicer_functions") else None


def driver_spec(
    workload: Workload, variant: OursVariant, options: dict, cpus: int, grpc: dict | None
) -> dict[str, Any]:
    """What ours_driver.py serves, and how: the app, its settings, ports and options."""
    monitor_dir = workload.work_dir / "monitoring" / variant.name.replace("+", "_")
    monitor = monitor_cpus(options, cpus) if variant.monitor_on else None
    return {
        "import_path": OURS_IMPORT_PATH,
        "args": app_args(workload, monitor_dir, monitor),
        "app_name": APP_NAME,
        "port": free_port(),
        "grpc_options": grpc,
        "num_cpus": cpus,
        "deployment_options": options,
        "logging_config": None if variant.access_log else {"enable_access_log": False},
    }


def start_ours(
    workload: Workload,
    variant: OursVariant,
    base: dict[str, Any],
    cpus: int,
    timeout: float,
    nbthread: int = 1,
    grpc: dict[str, Any] | None = None,
) -> ServiceProcess:
    """Ours under `variant`: a child driver with the variant's environment (Serve's actors
    inherit it), started, its ingress found, its answers checked; with `grpc` (grpc_options),
    its gRPC service too (service.grpc, Serve's gRPC ingress)."""
    slug = variant.name.replace("+", "_")
    extra, cleanup = ingress_env(workload.settings, variant, nbthread)
    ingress = ingress_of(variant.env | extra)
    options = variant.deployment(base)
    spec = driver_spec(workload, variant, options, cpus, grpc)
    spec_path, port = workload.work_dir / f"ours_spec_{slug}.json", spec["port"]
    spec_path.write_text(json.dumps(spec))
    print(f"  {variant.describe(options, extra, ingress)}")
    # The monitor's settings are the defaults: CREDIT_MONITOR_* must not reach build_app.
    if dropped := sorted(k for k in os.environ if k.startswith("CREDIT_MONITOR_")):
        print(f"  not passed to the driver: {', '.join(dropped)}")
    env = child_env(drop="CREDIT_MONITOR_", RAY_USAGE_STATS_ENABLED="0") | variant.env | extra
    service = ServiceProcess.launch(
        variant.label,
        [sys.executable, str(DRIVER), str(spec_path)],
        log_path=workload.work_dir / "logs" / f"ours_{slug}.log",
        env=env,
        cwd=workload.work_dir,  # not the project root: its .env must not reach the settings
    )
    service.url, service.counts = f"http://127.0.0.1:{port}{ROUTE}", is_serve_process
    service.grpc = f"127.0.0.1:{grpc['port']}" if grpc else ""
    service.monitor_dir = Path(spec["args"]["settings"]["monitor_dir"])
    service.cleanup = cleanup
    try:
        service.wait_ready(lambda: bool(service.log_lines("SERVE_READY")), timeout)
        find_ingress(service, ingress, port)
        first = json.dumps(ours_body(workload.rows[0]))
        service.wait_ready(lambda: http("POST", service.url, first, **workload.auth)[0] == 200, 60)
        check_ours(service, workload)
    except BaseException:
        service.stop()
        raise
    return service


def find_ingress(service: ServiceProcess, ingress: str, port: int) -> None:
    """Direct ingress: wrk loads the one replica's own port. HAProxy: it took the proxy's port
    and balances over the replicas' direct-ingress ports."""
    if ingress == "direct":
        ports = poll(lambda: direct_ingress_ports(service) or None, "a replica's port", 30, 0.5)
        if len(ports) != 1:
            raise RuntimeError(f"direct ingress: replicas listen on {ports}: not one URL for wrk")
        service.url = f"http://127.0.0.1:{ports[0]}{ROUTE}"
        proxies = [p for p in sample(service.tree()) if p.title.startswith("ray::ProxyActor")]
        print(f"  direct ingress on port {ports[0]} (proxy processes, idle: {len(proxies)})")
    elif ingress == "haproxy":
        found = poll(lambda: haproxies(service) or None, "haproxy in the Ray tree", 60, 0.5)
        ports = direct_ingress_ports(service)
        print(f"  HAProxy on port {port} ({len(found)} process(es)), replicas' ports {ports}")


def haproxies(service: ServiceProcess) -> list[Proc]:
    return [p for p in sample(service.tree()) if p.program == "haproxy"]


def direct_ingress_ports(service: ServiceProcess) -> list[int]:
    """HTTP ports the Serve replicas of the tree listen on (direct ingress)."""
    ports = set()
    for proc in service.tree():
        with contextlib.suppress(psutil.Error):
            if " ".join(proc.cmdline()).startswith("ray::ServeReplica"):
                listening = [c for c in proc.net_connections("tcp") if c.status == "LISTEN"]
                ports |= {c.laddr.port for c in listening if c.laddr.port in DIRECT_PORTS}
    return sorted(ports)


def check_ours(service: ServiceProcess, workload: Workload) -> None:
    """Ours (and the floor, the same API) must answer CreditModel.score's PD, decision and
    reason codes for the first 20 bodies."""
    for i, row in enumerate(workload.rows[:20]):
        status, raw = http("POST", service.url, json.dumps(ours_body(row)), **workload.auth)
        if status != 200:
            raise RuntimeError(f"{service.name} answered {status}: {raw[:300]!r}")
        check_answer(service.name, json.loads(raw), workload, i)
        if i == 0:
            print(f"  {service.name} answers e.g. {raw[:300].decode(errors='replace')}")


def monitor_summary(service: ServiceProcess) -> dict[str, Any]:
    """After a run: the drift monitor's checks (one results/*.json each) and the status the
    driver asked the actor for as it stopped (rows received, buffered, dropped, last error)."""
    checks = []
    results = sorted(service.monitor_dir.glob("results/*.json")) if service.monitor_dir else []
    for path in results:
        with contextlib.suppress(OSError, ValueError):
            checks.append(json.loads(path.read_text()))
    statuses = service.log_lines("MONITOR_STATUS ")
    return {
        "dir": str(service.monitor_dir) if service.monitor_dir else None,
        "checks": len(checks),
        "rows_checked": sum(int(c.get("rows", 0)) for c in checks),
        "drift_flagged": sum(bool(c.get("dataset_drift")) for c in checks),
        "drifted_features": sorted({f for c in checks for f in c.get("drifted_features", [])}),
        "status": json.loads(statuses[-1]) if statuses else None,
    }


def describe_monitor(monitor: dict[str, Any]) -> str:
    status = monitor["status"]
    if status is None and not monitor["checks"]:
        return "drift monitor: not running (no replica fed it), no checks"
    text = (
        f"drift monitor: {monitor['checks']} checks of {monitor['rows_checked']:,} rows in all, "
        f"dataset drift in {monitor['drift_flagged']}"
    )
    text += f" ({', '.join(monitor['drifted_features'])})" if monitor["drifted_features"] else ""
    if status and "error" in status:
        return text + f"; status unavailable: {status['error']}"
    if status:
        version = status.get("reference_version")
        text += (
            f"; rows received {status['received_rows']:,}, still buffered "
            f"{status['buffered_rows']:,}, dropped {status['dropped_rows']:,}; reference "
            f"{f'v{version}' if version else 'not loaded (loaded at the first check)'}; "
            f"last error {status['last_error'] or 'none'}"
        )
    return text
