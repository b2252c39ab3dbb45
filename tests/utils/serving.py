"""What the serving and monitoring tests share: the deployed app and request bodies."""

from __future__ import annotations

import copy
import shlex
import shutil
import sys
from pathlib import Path

import requests
import yaml

from app.serving.client import decision_body
from tests.utils import ROOT, wait_for
from tests.utils.datasets import german
from tests.utils.training import QUICK_FIT

CATEGORIES = german().categories

APPLICANTS = 2000
# The drift monitor only receives rows while a test turns `drift_monitor` on (reconfigured in
# place: the replica stays), so the other tests' traffic never triggers a check.
BASE_CONFIG = {
    "alias_poll_seconds": 1.0,
    "log_flush_seconds": 0.5,
    "log_flush_rows": 200,
    "drift_monitor": False,
}
WINDOW = 500
# The app's settings for the drift monitor, given once for the whole package: no CPU of its own
# (the package's Ray Data and Ray Train work needs them), a check at exactly WINDOW rows (the
# timer never fires in a test), two HTML reports kept, and after two drifted checks a quick
# retraining on the current snapshot (a fresh ingest proves nothing more here). Every row is
# fed and checks run back to back (no CPU budget): the tests count rows and wait for each check
# (tests/unit/serving/test_monitorfeed.py and tests/unit/monitoring/test_schedule.py cover
# the sampling and the budget).
MONITOR = {
    "monitor_cpus": 0,
    "monitor_cpu_budget": 0,
    "monitor_max_rows_per_second": 0,
    "monitor_check_rows": WINDOW,
    "monitor_min_rows": WINDOW,
    "monitor_check_seconds": 3600,
    "monitor_keep_reports": 2,
    "retrain_after_checks": 2,
    "retrain_entrypoint": f"{shlex.quote(sys.executable)} -m jobs.retrain --no-ingest",
    **QUICK_FIT,
}


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


def service_grpc_options() -> dict:
    """serve_config.yaml's grpc_options."""
    return dict(yaml.safe_load((ROOT / "serve_config.yaml").read_text())["grpc_options"])


class ServedApp:
    """The running app, deployed the way `serve deploy serve_config.yaml` does it."""

    def __init__(self, overrides: dict, url: str, name: str) -> None:
        """`overrides`: the app's settings (its `args`), which the tests' settings match."""
        from app.config import load_settings
        from app.serving.keys import KeyFile

        # The keys file named explicitly, so apps deployed with copies of these overrides
        # (another data_dir) admit the same key.
        keys_file = Path(overrides["data_dir"]) / "api_keys.json"
        self.overrides = {
            **overrides,
            "data_dir": str(overrides["data_dir"]),
            "api_keys_file": str(keys_file),
        }
        self.settings = load_settings(**self.overrides, _env_file=None)
        self.url = url
        self.name = name
        keys = KeyFile.read(keys_file)
        # Every scope and no rate limit: the tests send bursts from one key.
        token = keys.add("tests", ["decisions", "decisions:batch", "monitoring:read"], rate=0)
        keys.write()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.deployed: dict | None = None
        self.token = token
        self.grpc: str | None = None  # host:port of the gRPC service, once Serve serves it

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
        # answers with the old settings, so wait for a different replica.
        old = self.replica() if self.deployed not in (None, overrides) else None
        apps = [app_config(self.name, overrides, config, replicas), *extra_apps]
        _get_global_client().deploy_apps(ServeDeploySchema(applications=apps))
        wait_for(lambda: self.ready(config, old), "the app to apply its config", 180)
        # Until Serve has exactly these replicas, one it is stopping (or one still starting)
        # answers too, with what it saw before: a test's next request must meet the app
        # as deployed.
        wait_for(lambda: self.replica_states() == {"RUNNING": replicas}, "the replicas", 180)
        self.deployed = overrides

    def replica_states(self) -> dict[str, int]:
        """How many replicas of the app's deployment Serve's controller has, by state
        (Serve's ReplicaState is a str enum: its keys compare equal to "RUNNING" and the rest)."""
        from ray import serve

        app = serve.status().applications.get(self.name)
        if app is None:
            return {}
        (deployment,) = app.deployments.values()
        return dict(deployment.replica_states)

    def replica(self) -> str | None:
        try:
            return self.get("/v1/status").json().get("replica")
        except (requests.RequestException, ValueError):
            return None

    def status(self) -> dict:
        """GET /v1/status: the replica that answered, in detail (monitoring:read)."""
        response = self.get("/v1/status")
        assert response.status_code == 200, response.text
        return response.json()

    def ready(self, config: dict, old_replica: str | None = None) -> bool:
        try:
            if self.get("/readyz").status_code != 200:
                return False
            response = self.get("/v1/status")
        except requests.RequestException:
            return False
        if response.status_code != 200 or response.json()["status"] != "ok":
            return False
        if old_replica is not None and response.json()["replica"] == old_replica:
            return False
        live = response.json()["routing"]
        return all(live[k] == v for k, v in {**BASE_CONFIG, **config}.items())

    def new_session(self) -> requests.Session:
        """A session of its own (its own connections), with the tests' key."""
        session = requests.Session()
        session.headers.update(self.session.headers)
        return session

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


def body(i: int, prefix: str = "S") -> dict:
    """Applicant i's request: S-ids are the synthetic applicants, A-ids the shipped ones."""
    return decision_body({"applicant_id": f"{prefix}{i + 1:07d}", **application(i)}, german())


def reset_monitor(settings) -> None:
    """No drift monitor and nothing it kept: the next row sent starts a fresh one."""
    kill_monitor(settings)
    shutil.rmtree(settings.monitor_dir, ignore_errors=True)


def kill_monitor(settings) -> None:
    """Remove the drift monitor actor (detached: it would outlive the tests that made it)."""
    import ray

    from app.monitoring.monitor import find_monitor

    monitor = find_monitor(settings)
    if monitor is not None:
        ray.kill(monitor, no_restart=True)
        wait_for(lambda: find_monitor(settings) is None, "the drift monitor to go", 60)


def assert_decision_shape(out: dict, applicant_id: str) -> None:
    """The documented answer of POST /v1/decisions, from the champion v1."""
    import pandas as pd

    assert set(out) == {
        "request_id",
        "applicant_id",
        "probability_of_default",
        "decision",
        "reasons",
        "model",
        "features_as_of",
        "counter_offer",
    }
    assert out["applicant_id"] == applicant_id and 0 <= out["probability_of_default"] <= 1
    assert out["model"] == {"name": "credit_risk", "version": "1", "variant": "champion"}
    assert out["decision"] == ("decline" if out["probability_of_default"] >= 1 / 6 else "approve")
    assert out["counter_offer"] is None or out["decision"] == "decline"
    assert len(out["reasons"]) <= 4
    assert all(set(r) == {"code", "feature", "description", "contribution"} for r in out["reasons"])
    assert pd.Timestamp(out["features_as_of"]).tzinfo is not None
