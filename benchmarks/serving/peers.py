"""The services ours is measured against, each started on free ports, ready and with its
answers checked: (b) MLServer, (c) the seed stack (MLServer + Feast), (d) the floor, and
`feast serve`. MLServer and the seed stack run from virtualenvs of their own."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.localservices import free_port
from benchmarks.harness.ours import ROUTE, app_args, check_ours
from benchmarks.harness.procs import ROOT, ServiceProcess, child_env, http, start_service
from benchmarks.harness.workload import (
    MLSERVER_MODEL,
    Workload,
    check_answer,
    feast_body,
    mlserver_body,
    peer_body,
)

# uvloop < 0.22: MLServer 1.7.1's inference worker dies at start with 0.22+ (MLServer#2286).
MLSERVER_PINS = ("mlserver==1.7.1", "mlserver-xgboost==1.7.1", "xgboost==3.2.0", "uvloop==0.21.0")
# The seed stack: MLServer 1.7.1 needs fastapi < 0.116 (so starlette < 0.47); Feast 0.67.0
# declares starlette >= 1.0.1 for its own servers only, never the SDK path the runtime calls:
# the one conflict, overridden. Everything else is held to requirements.lock's version.
PEER_PINS = ("mlserver==1.7.1", "feast[redis]==0.67.0", "xgboost-cpu==3.2.0", "uvloop==0.21.0")
PEER_UNLOCKED = ("fastapi", "starlette", "protobuf", "uvloop")
PEER_OVERRIDES = ("starlette<0.47",)
PEER_MODEL, PEER_RUNTIME = "credit-decisions", "feast_runtime.FeastDecisionRuntime"
PEER_VERSIONS = ("mlserver", "feast", "xgboost-cpu", "pandas", "numpy", "redis", "fastapi")
PEER_VERSIONS += ("starlette", "protobuf", "uvloop")
PEERS_DIR = ROOT / "benchmarks" / "peers"


def constraints(pins: tuple[str, ...]) -> str:
    """requirements.lock's pins but those of `pins`' packages and PEER_UNLOCKED."""
    skip = {pin.split("==")[0].split("[")[0].lower() for pin in pins} | set(PEER_UNLOCKED)
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pinned = [line.strip() for line in lines if "==" in line and not line.startswith((" ", "#"))]
    return "".join(line + "\n" for line in pinned if line.split("==")[0].lower() not in skip)


def ensure_venv(venv: Path, pins: tuple[str, ...], locked: bool) -> Path:
    """A virtualenv with `pins` (and, `locked`, requirements.lock as constraints plus
    PEER_OVERRIDES), installed with the project's uv when missing or changed; its mlserver."""
    python, binary = venv / "bin" / "python", venv / "bin" / "mlserver"
    if not python.exists():
        print(f"creating {venv}")
        base_python = shutil.which("python3.11") or sys.executable
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    files = {"-c": constraints(pins), "--override": "\n".join(PEER_OVERRIDES)} if locked else {}
    stamp, digest = venv / "bench-installed", json.dumps([pins, files], sort_keys=True)
    if binary.exists() and stamp.exists() and stamp.read_text() == digest:
        return binary
    options = []
    for flag, text in files.items():
        (venv / f"bench{flag}.txt").write_text(text)
        options += [flag, str(venv / f"bench{flag}.txt")]
    print(f"uv pip install {' '.join(pins)} into {venv}{' (lock constraints)' * locked}")
    uv = [str(Path(sys.executable).with_name("uv")), "pip", "install", "--quiet"]
    uv += ["--compile-bytecode", "--python", str(python), *options, *pins]
    subprocess.run(uv, check=True, env=child_env(other_venv=True))
    stamp.write_text(digest)
    return binary


def prepare_venvs(services: tuple[str, ...], args: Any) -> None:
    """The peers' virtualenvs, made or updated before anything is measured, and versions."""
    if "mlserver" in services:
        ensure_venv(args.mlserver_venv, MLSERVER_PINS, locked=False)
        shown = tuple(pin.split("==")[0] for pin in MLSERVER_PINS)
        print(f"MLServer venv {args.mlserver_venv}: {versions(args.mlserver_venv, shown)}")
    if "peer" in services:
        ensure_venv(args.peer_venv, PEER_PINS, locked=True)
        print(f"seed stack venv {args.peer_venv}: {versions(args.peer_venv, PEER_VERSIONS)}")


def versions(venv: Path, names: tuple[str, ...]) -> str:
    code = "import importlib.metadata as m, sys; print(*(m.version(n) for n in sys.argv[1:]))"
    run = [str(venv / "bin" / "python"), "-c", code, *names]
    out = subprocess.run(run, check=True, capture_output=True, text=True, env=child_env(True))
    return ", ".join(f"{n} {v}" for n, v in zip(names, out.stdout.split(), strict=True))


def start_mlserver_on(
    name: str, venv: Path, model: dict[str, Any], env: dict, workload: Workload, args: Any
) -> ServiceProcess:
    """MLServer with its defaults but the ports (loopback; REST at service.url, gRPC at
    service.grpc) and OMP_NUM_THREADS (XGBoost's threads per prediction; Ray gives our replica
    1), serving one model."""
    repo = workload.mlserver_repo if name == "mlserver" else workload.work_dir / f"mlserver_{name}"
    port, grpc_port = free_port(), free_port()
    settings = {"host": "127.0.0.1", "http_port": port}
    settings |= {"grpc_port": grpc_port, "metrics_port": free_port()}
    (repo / model["name"]).mkdir(parents=True, exist_ok=True)
    (repo / "settings.json").write_text(json.dumps(settings))
    (repo / model["name"] / "model-settings.json").write_text(json.dumps(model))
    env = env | {"OMP_NUM_THREADS": str(args.mlserver_omp_threads)}
    if args.mlserver_omp_threads <= 0:
        env.pop("OMP_NUM_THREADS")
    base = f"http://127.0.0.1:{port}/v2/models/{model['name']}"
    binary = ensure_venv(venv, PEER_PINS if name == "peer" else MLSERVER_PINS, name == "peer")
    check = check_peer if name == "peer" else check_mlserver
    service = start_service(
        name,
        [str(binary), "start", str(repo)],
        f"{base}/infer",
        lambda: http("GET", f"{base}/ready", timeout=2)[0] == 200,
        lambda s: check(s, workload),
        log_path=workload.work_dir / "logs" / f"{name}.log",
        cwd=repo,
        env=env,
        timeout=args.start_timeout,
    )
    service.grpc = f"127.0.0.1:{grpc_port}"  # the same V2 protocol over gRPC
    return service


def start_mlserver(workload: Workload, args: Any) -> ServiceProcess:
    """(b) MLServer's XGBoost runtime on the same booster: the encoded features in the request."""
    model = {"name": MLSERVER_MODEL, "implementation": "mlserver_xgboost.XGBoostModel"}
    model["parameters"] = {"uri": "./model.json", "version": "v1"}
    return start_mlserver_on("mlserver", args.mlserver_venv, model, child_env(True), workload, args)


def check_mlserver(service: ServiceProcess, workload: Workload) -> None:
    """MLServer must return the booster's own PD for the same features."""
    assert workload.features is not None and workload.expected_pd is not None
    for features, want in zip(workload.features[:20], workload.expected_pd, strict=False):
        status, body = http("POST", service.url, mlserver_body(features))
        if status != 200:
            raise RuntimeError(f"mlserver answered {status}: {body[:300]!r}")
        value = float(json.loads(body)["outputs"][0]["data"][0])
        if not math.isclose(value, want, rel_tol=1e-5, abs_tol=1e-6):
            raise RuntimeError(f"mlserver PD {value} != booster PD {want}")


def start_peer(workload: Workload, args: Any) -> ServiceProcess:
    """(c) the seed stack: MLServer with peers/feast_runtime.py (Feast's get_online_features on
    the feature service, then CreditModel.score) over the run's registry and Redis."""
    extra = {"feature_repo": str(write_feast_repo(workload))}
    extra["feature_service"] = workload.settings.feature_service_name
    parameters = {"uri": str(workload.model_dir), "version": "v1", "extra": extra}
    model = {"name": PEER_MODEL, "implementation": PEER_RUNTIME, "parameters": parameters}
    # Only the project's `app` on the path (a symlink): its other folders could shadow packages.
    path_dir = workload.work_dir / "peer_path"
    path_dir.mkdir(exist_ok=True)
    if not (path_dir / "app").exists():
        (path_dir / "app").symlink_to(ROOT / "app")
    env = child_env(True, PYTHONPATH=f"{PEERS_DIR}:{path_dir}")
    return start_mlserver_on("peer", args.peer_venv, model, env, workload, args)


def check_peer(service: ServiceProcess, workload: Workload) -> None:
    """The seed stack must answer CreditModel.score's PD, decision and reason codes."""
    for i, row in enumerate(workload.rows[:20]):
        status, raw = http("POST", service.url, peer_body(row))
        if status != 200:
            raise RuntimeError(f"seed stack answered {status}: {raw[:300]!r}")
        answer = json.loads(raw)["outputs"][0]["data"][0]
        check_answer("seed stack", json.loads(answer), workload, i)
        if i == 0:
            print(f"  seed stack answers e.g. {answer[:300]}")


def start_floor(workload: Workload, args: Any, user_config: dict[str, Any]) -> ServiceProcess:
    """(d) peers/floor.py: one uvicorn process serving the same DecisionService, no Ray."""
    port = free_port()
    spec = {"settings": app_args(workload)["settings"], "user_config": user_config}
    spec_path = workload.work_dir / "floor_spec.json"
    spec_path.write_text(json.dumps(spec | {"host": "127.0.0.1", "port": port}))
    env = child_env(drop="CREDIT_MONITOR_")
    if args.mlserver_omp_threads > 0:
        env["OMP_NUM_THREADS"] = str(args.mlserver_omp_threads)
    base = f"http://127.0.0.1:{port}"
    return start_service(
        "floor",
        [sys.executable, str(PEERS_DIR / "floor.py"), str(spec_path)],
        f"{base}{ROUTE}",
        lambda: http("GET", f"{base}/readyz", timeout=5)[0] == 200,
        lambda s: check_ours(s, workload),
        log_path=workload.work_dir / "logs" / "floor.log",
        cwd=workload.work_dir,
        env=env,
        timeout=args.start_timeout,
    )


def write_feast_repo(workload: Workload) -> Path:
    """A feature_store.yaml equivalent to `repo_config(settings)` (project, registry, Redis,
    offline store), for `feast serve` and the seed stack."""
    import yaml
    from feast.repo_config import load_repo_config

    from app.features.store import repo_config

    config, repo = repo_config(workload.settings), workload.work_dir / "feast_repo"
    repo.mkdir(exist_ok=True)
    registry = config.registry_config
    document = {"project": config.project, "provider": config.provider}
    document["registry"] = registry if isinstance(registry, str) else registry["path"]
    document["online_store"], document["offline_store"] = (
        dict(config.online_config),
        dict(config.offline_config),
    )
    document["entity_key_serialization_version"] = config.entity_key_serialization_version
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    loaded = load_repo_config(repo, repo / "feature_store.yaml")
    same = [
        getattr(loaded, a) == getattr(config, a)
        for a in ("project", "provider", "entity_key_serialization_version")
    ]
    same += [loaded.registry.path == config.registry.path]
    same += [loaded.online_store.connection_string == config.online_store.connection_string]
    if not all(same):
        raise RuntimeError("feature_store.yaml differs from repo_config")
    return repo


def start_feast(workload: Workload, args: Any) -> ServiceProcess:
    """`feast serve`: the feature fetch alone (with the on-demand view, whose UDF imports app)."""
    repo, port = write_feast_repo(workload), free_port()
    command = [str(Path(sys.executable).parent / "feast"), "-c", str(repo), "serve"]
    command += ["-h", "127.0.0.1", "-p", str(port), "--max-requests", str(args.feast_max_requests)]
    base = f"http://127.0.0.1:{port}"
    return start_service(
        "feast",
        command,
        f"{base}/get-online-features",
        lambda: http("GET", f"{base}/health", timeout=2)[0] == 200,
        lambda s: check_feast(s, workload),
        log_path=workload.work_dir / "logs" / "feast.log",
        cwd=repo,
        env=child_env(PYTHONPATH=str(ROOT)),
        timeout=args.start_timeout,
    )


def check_feast(service: ServiceProcess, workload: Workload) -> None:
    """`feast serve` must return every feature, with the values the SDK read."""
    for row, expected in list(zip(workload.rows, workload.online, strict=True))[:20]:
        status, raw = http(
            "POST", service.url, feast_body(row, workload.settings.feature_service_name)
        )
        if status != 200:
            raise RuntimeError(f"feast serve answered {status}: {raw[:300]!r}")
        answer = json.loads(raw)
        for name, result in zip(
            answer["metadata"]["feature_names"], answer["results"], strict=True
        ):
            if name in expected and not same_value(result["values"][0], expected[name]):
                raise RuntimeError(f"feast serve: {name} = {result['values'][0]!r}")
            if name in expected and result["statuses"][0] != "PRESENT":
                raise RuntimeError(f"feast serve: {name} {result['statuses'][0]}")


def same_value(value: Any, want: Any) -> bool:
    if isinstance(want, int | float) or hasattr(want, "dtype"):
        return math.isclose(float(value), float(want), rel_tol=1e-9)
    return value == want
