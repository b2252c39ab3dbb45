"""Deploy serve_config.yaml's application from Python (the main job) and wait until it answers."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from app.config import Settings
from app.errors import CreditRiskError
from app.waiting import WaitTimeout, poll

# Deployment options of serve_config.yaml that `Deployment.options` takes as they are.
_OPTIONS = (
    "num_replicas",
    "autoscaling_config",
    "ray_actor_options",
    "max_ongoing_requests",
    "user_config",
    "health_check_period_s",
    "health_check_timeout_s",
    "graceful_shutdown_timeout_s",
)


class DeployError(CreditRiskError):
    """The decision service did not deploy or did not become ready."""


@dataclass(frozen=True)
class Deployed:
    name: str
    url: str
    options: dict[str, Any]
    grpc: str | None = None  # host:port of the Open Inference Protocol's gRPC service


def load_app_config(config_path: Path) -> dict[str, Any]:
    """The one application in serve_config.yaml, checked against Serve's own schema."""
    from ray.serve.schema import ServeDeploySchema

    try:
        raw = yaml.safe_load(config_path.read_text())
        schema = ServeDeploySchema.model_validate(raw)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise DeployError(f"{config_path}: not a valid Serve config: {exc}") from None
    if len(schema.applications) != 1:
        raise DeployError(f"{config_path}: expected one application")
    return raw["applications"][0]


def deploy_app(
    settings: Settings,
    config_path: Path,
    host: str,
    port: int,
    access_log: bool = True,
    grpc_port: int | None = None,
) -> Deployed:
    """`serve deploy`'s effect with this process's settings: same deployment options, same
    user_config, so what the main job shows is what the config file deploys. Without the
    access log the main job's console keeps its progress lines (the prediction log still
    records every decision)."""
    from ray import serve

    from app.serving.decisions import CreditDecisions

    app = load_app_config(config_path)
    (deployment,) = app["deployments"]
    options = {k: deployment[k] for k in _OPTIONS if k in deployment}
    route = app.get("route_prefix", "/")
    # The config's request timeouts too: a request stuck behind a hung dependency is cut off.
    config = yaml.safe_load(config_path.read_text())
    timeout = (config.get("http_options") or {}).get("request_timeout_s")
    grpc = dict(config.get("grpc_options") or {})
    if grpc_port is not None:
        grpc["port"] = grpc_port
    serve.start(
        http_options={"host": host, "port": port, "request_timeout_s": timeout},
        grpc_options=grpc or None,
    )
    serve.run(
        CreditDecisions.options(**options).bind(settings),
        name=app["name"],
        route_prefix=route,
        blocking=False,
        logging_config={"enable_access_log": access_log},
    )
    grpc_address = f"{host}:{grpc['port']}" if grpc.get("grpc_servicer_functions") else None
    return Deployed(app["name"], f"http://{host}:{port}{route.rstrip('/')}", options, grpc_address)


def wait_ready(url: str, timeout: float, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Poll until the service is ready; its GET /v1/status answer (with `headers`, a token of
    scope monitoring:read). On timeout, name what the service last said was missing: the open
    /readyz says only "unavailable", /v1/status says why."""
    last = "no answer"

    def ready() -> dict[str, Any] | None:
        nonlocal last
        try:
            status = requests.get(f"{url}/v1/status", headers=headers, timeout=10)
            if status.status_code != 200:
                last = f"GET /v1/status: HTTP {status.status_code} {status.text[:200]}"
                return None
            health = status.json()
            if health.get("status") == "ok":
                return health
            last = health.get("detail") or "unavailable"
        except (requests.RequestException, ValueError) as exc:
            last = f"{type(exc).__name__}"
        return None

    try:
        return poll(ready, "ready", timeout, interval=0.5)
    except WaitTimeout:
        raise DeployError(
            f"the decision service at {url} was not ready after {timeout:g} s: {last}"
        ) from None


def deploy_service(
    settings: Settings,
    config_path: Path,
    host: str,
    ports: tuple[int, int],
    ready_timeout: float,
    local: bool,
) -> tuple[Deployed, str]:
    """The main job's deploy stage: deploy (HTTP and gRPC on `ports`), wait until ready; what
    it deployed, in one line. Fails clearly if it cannot serve."""
    from app.serving.client import bearer_headers
    from app.training import registry

    port, grpc_port = ports
    if local:  # checked at the start too; something may have taken a port since
        check_port_free(host, port)
        check_port_free(host, grpc_port)
    # The replicas load the champion from MLflow: an unreachable registry is named here, in
    # one line, rather than as replicas that never become ready.
    registry.client(settings)
    access = api_access(settings)
    deployed = deploy_app(settings, config_path, host, port, False, grpc_port)
    health = wait_ready(deployed.url, ready_timeout, bearer_headers(settings))
    autoscaling = deployed.options.get("autoscaling_config") or {}
    low = autoscaling.get("min_replicas", deployed.options.get("num_replicas", 1))
    high = autoscaling.get("max_replicas", low)
    scale = f"{low} replica{'s' if high > 1 else ''}" if low == high else f"{low}-{high} replicas"
    detail = (
        f"app {deployed.name!r} at {deployed.url}"
        f"{f' and gRPC {deployed.grpc}' if deployed.grpc else ''} ({scale}), "
        f"champion v{health['champion']}; "
        f"API docs {deployed.url}/docs; {access}"
    )
    return deployed, detail


def api_access(settings: Settings) -> str:
    """How a caller gets in: the local key's token file (made on first run), or a warning."""
    from app.serving.keys import local_token

    if settings.api_auth == "disabled":
        return "API authentication DISABLED (CREDIT_API_AUTH=disabled)"
    _, made = local_token(settings)
    token_path = settings.data_dir / "api_token"
    return (
        f"API key {'created, ' if made else ''}token in {token_path} "
        f'(curl -H "Authorization: Bearer $(cat {token_path})" ...)'
    )


class PortInUse(DeployError):
    """The port the service is to listen on is held by another process."""


def check_port_free(host: str, port: int) -> None:
    """PortInUse naming who holds `port` (pid and command line where they can be read),
    unless a listener can bind `host`:`port`. SO_REUSEADDR as HAProxy binds: connections
    still in TIME_WAIT from an earlier run do not count, only a socket bound there."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    holder = port_holder(port) or "a process this user cannot inspect"
    raise PortInUse(
        f"port {port} ({host}) is already in use by {holder}: stop it or pass another --port"
    )


def port_holder(port: int) -> str | None:
    """'pid N (command line)' of each process listening on TCP `port`, from /proc/net/tcp and
    tcp6 (the socket's inode) and /proc/<pid>/fd (who has that socket open); None if no such
    listener is visible."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                listening = fields[3] == "0A"
                if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    holders = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in (proc_dir / "fd").iterdir()):
                raw = (proc_dir / "cmdline").read_bytes().decode(errors="replace")
                command = " ".join(raw.replace("\0", " ").split())  # one line
                if len(command) > 300:
                    command = command[:297] + "..."
                holders.append(f"pid {proc_dir.name} ({command or '?'})")
    return ", ".join(holders) or f"a process this user cannot inspect ({len(inodes)} socket)"
