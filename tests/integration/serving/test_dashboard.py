"""Every metric the Grafana dashboard (deploy/grafana/credit-risk.json) queries is exported by
the running app on Ray's Prometheus endpoint, once it has answered, refused and failed
requests, checked drift and triggered a retraining."""

from __future__ import annotations

import json
import shlex
import sys

import pytest
import requests

from app.data.warehouse import source_tables
from app.monitoring.monitor import find_monitor, get_or_create_monitor
from tests.utils import wait_for
from tests.utils.dashboards import (
    load_dashboard,
    missing_metrics,
    queried_metrics,
    unmatched_selectors,
)
from tests.utils.datasets import german
from tests.utils.serving import APPLICANTS, WINDOW, body, reset_monitor

REQUEST_COLUMNS = german().request_columns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


def shifted_requests(settings) -> list[dict]:
    """The applicants' applications with larger loans: every check of them drifts."""
    table = source_tables(settings, rows=APPLICANTS, shift="larger_loans")
    applications = table["loan_applications"].sort_values("applicant_id")
    return [
        {
            "applicant_id": row["applicant_id"],
            "application": {c: row[c] if c == "purpose" else int(row[c]) for c in REQUEST_COLUMNS},
        }
        for row in applications.to_dict("records")
    ]


@pytest.fixture
def quick_retraining(served):
    """The package's app feeding a fresh drift monitor whose retraining job is a no-op (the
    trigger is what the dashboard counts; test_monitoring runs the real job)."""
    noop = f"{shlex.quote(sys.executable)} -c pass"
    reset_monitor(served.settings)
    # Named and detached: the replica's feed finds this one instead of making its own.
    get_or_create_monitor(served.settings.model_copy(update={"retrain_entrypoint": noop}))
    # Shadow on: the challenger's scores are a panel of their own.
    served.deploy(drift_monitor=True, shadow=True)
    yield served.settings
    served.deploy()
    reset_monitor(served.settings)


def monitor_status(settings) -> dict:
    import ray

    return ray.get(find_monitor(settings).status.remote(), timeout=30)


def send_window(served, bodies: list[dict], done, what: str) -> dict:
    """One window of decisions, then the monitor status once `done(status)` (rows that arrive
    together are checked together, so a window is sent once the previous one is checked)."""
    for start in range(0, len(bodies), 100):
        out = served.post("/v1/decisions/batch", {"requests": bodies[start : start + 100]})
        assert out.status_code == 200 and not out.json()["errors"], out.text[:500]

    def ready() -> dict | None:
        status = monitor_status(served.settings)
        return status if done(status) else None

    return wait_for(ready, what, 240, 0.5)


def first_checked(status: dict) -> bool:
    """Checked once and its rows done with (during a check they still count as buffered)."""
    return status["checks"] == 1 and status["buffered_rows"] < WINDOW


def triggered(status: dict) -> bool:
    return bool(status["triggers"])


def test_every_metric_the_dashboard_queries_is_exported(served, quick_retraining):
    import ray

    dashboard = load_dashboard()
    queried = queried_metrics(dashboard)
    assert len(queried) >= 10
    for i in range(5):  # one at a time: the latency histogram times single decisions
        assert served.post("/v1/decisions", body(i)).status_code == 200
    assert served.post("/v1/decisions", body(0, prefix="X")).status_code == 404  # unknown
    anonymous = requests.post(served.url + "/v1/decisions", json=body(1), timeout=30)
    assert anonymous.status_code == 401
    # Two drifted checks in a row: retraining is submitted after the second.
    shifted = shifted_requests(served.settings)
    send_window(served, shifted[:WINDOW], first_checked, "drift check 1")
    status = send_window(served, shifted[WINDOW : 2 * WINDOW], triggered, "retraining")
    assert status["checks"] == 2
    assert [t["action"] for t in status["triggers"]] == ["submitted"], json.dumps(status)

    port = ray._private.worker.global_worker.node.metrics_export_port
    url = f"http://127.0.0.1:{port}/metrics"
    problems: dict[str, list[str]] = {}

    def all_exported() -> bool:
        text = requests.get(url, timeout=10).text
        problems["missing metrics"] = sorted(missing_metrics(queried, text))
        # Each selector's labels and values too (shadow="0", the application label...).
        problems["selectors no series matches"] = unmatched_selectors(dashboard, text)
        return not any(problems.values())

    try:
        wait_for(all_exported, "every dashboard metric on Ray's /metrics", 90, 1.0)
    except AssertionError:
        pytest.fail(f"the dashboard queries what the app does not export: {problems}")
