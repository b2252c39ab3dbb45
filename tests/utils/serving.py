"""What the serving and monitoring tests share: the deployed app and request bodies."""

from __future__ import annotations

import copy

import requests
import yaml

from app.data.schema import CATEGORIES
from tests.utils import ROOT, wait_for

APPLICANTS = 2000
BASE_CONFIG = {"alias_poll_seconds": 1.0, "log_flush_seconds": 0.5, "log_flush_rows": 200}


def app_config(name: str, settings_overrides: dict, user_config: dict, replicas: int = 1) -> dict:
    """serve_config.yaml's application, renamed and pointed at this test's data."""
    shipped = yaml.safe_load((ROOT / "serve_config.yaml").read_text())["applications"][0]
    app = copy.deepcopy(shipped)
    app.update(name=name, route_prefix=f"/{name}", args={"settings": settings_overrides})
    (deployment,) = app["deployments"]
    # A fixed count (one unless a test needs two): the autoscaler adding a replica under the
    # A/B load would take the CPUs the test itself needs; autoscaling is covered by the
    # config schema test.
    deployment.pop("autoscaling_config")
    deployment["num_replicas"] = replicas
    deployment["user_config"] = {**deployment["user_config"], **BASE_CONFIG, **user_config}
    return app


class Service:
    """The running app, deployed the way `serve deploy serve_config.yaml` does it."""

    def __init__(self, settings, url: str, name: str) -> None:
        self.settings = settings
        self.url = url
        self.name = name
        self.session = requests.Session()
        # No CPU for the drift monitor: the package's Ray Data and Ray Train work needs them.
        self.overrides = {
            "data_dir": str(settings.data_dir),
            "online_store": "redis",
            "redis_port": settings.redis_port,
            "monitor_cpus": 0,
        }
        self.deployed: dict | None = None

    def deploy(
        self,
        extra_apps: tuple[dict, ...] = (),
        settings: dict | None = None,
        replicas: int = 1,
        **config,
    ) -> None:
        # The controller call behind `serve deploy` (the CLI sends the same config through
        # the dashboard, which this test session does not run).
        from ray.serve.context import _get_global_client
        from ray.serve.schema import ServeDeploySchema

        overrides = {**self.overrides, **(settings or {})}
        # New settings (the app's args) mean new replicas; until the old one is gone it still
        # answers /readyz with the old settings, so wait for a different replica.
        old = self.replica() if self.deployed not in (None, overrides) else None
        apps = [app_config(self.name, overrides, config, replicas), *extra_apps]
        _get_global_client().deploy_apps(ServeDeploySchema(applications=apps))
        wait_for(lambda: self.ready(config, old), "the app to apply its config", 180)
        self.deployed = overrides

    def replica(self) -> str | None:
        try:
            return self.get("/readyz").json().get("replica")
        except (requests.RequestException, ValueError):
            return None

    def ready(self, config: dict, old_replica: str | None = None) -> bool:
        try:
            response = self.get("/readyz")
        except requests.RequestException:
            return False
        if response.status_code != 200:
            return False
        if old_replica is not None and response.json()["replica"] == old_replica:
            return False
        live = response.json()["routing"]
        return all(live[k] == v for k, v in {**BASE_CONFIG, **config}.items())

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.url + path, timeout=30)

    def post(self, path: str, body) -> requests.Response:
        return self.session.post(self.url + path, json=body, timeout=30)


def application(i: int) -> dict:
    purposes = CATEGORIES["purpose"]
    return {
        "credit_amount": 500 + 37 * i % 9000,
        "duration_in_month": 6 + i % 48,
        "purpose": purposes[i % len(purposes)],
        "installment_rate_in_percentage_of_disposable_income": 1 + i % 4,
    }


def body(i: int) -> dict:
    return {"applicant_id": f"S{i + 1:07d}", "application": application(i)}


def kill_monitor(settings) -> None:
    """Remove the drift monitor actor (detached: it would outlive the tests that made it)."""
    import ray

    from app.monitoring.monitor import find_monitor

    monitor = find_monitor(settings)
    if monitor is not None:
        ray.kill(monitor, no_restart=True)
        wait_for(lambda: find_monitor(settings) is None, "the drift monitor to go", 60)
