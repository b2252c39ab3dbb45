"""Deploy serve_config.yaml's application from Python (the main job) and wait until it answers."""

from __future__ import annotations

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
    settings: Settings, config_path: Path, host: str, port: int, access_log: bool = True
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
    # The config's request timeout too: a request stuck behind a hung dependency is cut off.
    timeout = (yaml.safe_load(config_path.read_text()).get("http_options") or {}).get(
        "request_timeout_s"
    )
    serve.start(http_options={"host": host, "port": port, "request_timeout_s": timeout})
    serve.run(
        CreditDecisions.options(**options).bind(settings),
        name=app["name"],
        route_prefix=route,
        blocking=False,
        logging_config={"enable_access_log": access_log},
    )
    return Deployed(app["name"], f"http://{host}:{port}{route.rstrip('/')}", options)


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
