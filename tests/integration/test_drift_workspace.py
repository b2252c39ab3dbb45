"""The drift monitor's checks in a local Evidently workspace, read back with Evidently's own API
and served by `evidently ui --workspace` (real Evidently and MLflow on SQLite, no Ray)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from app.config import SHIPPED_DATA_PATH
from app.data.synthetic import generate_raw
from app.data.warehouse import load_raw
from app.domain import PREDICTION
from app.localservices import ManagedProcess, free_port
from app.monitoring.workspace import DRIFT_FLAG, LARGEST_CSI, SCORE_PSI, dashboard_panels
from app.training.preprocess import FeatureEncoder
from app.training.reference import Reference, reference_bins
from tests.utils.datasets import german
from tests.utils.monitoring import monitor

pytestmark = pytest.mark.integration

ENCODER = FeatureEncoder.for_dataset(german())
WINDOW = 500


def features(n: int, seed: int, shift: str | None = None) -> pd.DataFrame:
    raw = generate_raw(load_raw(SHIPPED_DATA_PATH, german()), n, seed, shift, dataset=german())
    frame = pd.concat([raw, german().derive_frame(raw)], axis=1)
    # A fixed score standing in for the model's PD, moving with amount and duration.
    z = 0.0002 * frame["credit_amount"] + 0.03 * frame["duration_in_month"] - 2.5
    frame[PREDICTION] = 1 / (1 + np.exp(-z))
    return frame


def decisions(frame: pd.DataFrame, prefix: str) -> list[dict]:
    """Prediction-log records, as serving sends them to the monitor."""
    rows = frame.to_dict("records")
    now = datetime.now(UTC)
    return [
        {**row, "request_id": f"{prefix}{i}", "logged_at": now, "model_version": "1"}
        for i, row in enumerate(rows)
    ]


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """The real monitor (in-process), two checks: traffic like the reference, then shifted;
    the newest run alone keeps its plots (monitor_keep_reports=1)."""
    from app.config import load_settings

    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("workspace"), monitor_keep_reports=1, _env_file=None
    )
    frame = features(1200, seed=7)
    bins = reference_bins(frame, ENCODER)
    numeric, categorical = list(ENCODER.numeric), list(ENCODER.categorical)
    reference = Reference(frame, numeric, categorical, "1", "run", bins)
    drift_monitor = monitor(settings, reference_loader=lambda _: reference)
    results = []
    for number, shift in enumerate((None, "larger_loans")):
        drift_monitor.submit(decisions(features(WINDOW, 100 + number, shift), f"c{number}-"))
        results.append(drift_monitor.check_now())
    assert drift_monitor.status()["workspace_failures"] == 0
    return settings, results


def test_every_check_is_a_run_of_the_project_with_its_drift_share(checked):
    from evidently.ui.workspace import Workspace

    settings, (same, shifted) = checked
    assert not same["dataset_drift"] and shifted["dataset_drift"]
    workspace = Workspace(str(settings.monitor_dir / "workspace"))
    (project,) = workspace.list_projects()
    assert project.name == "credit_risk drift"
    runs = [workspace.get_run(project.id, r) for r in workspace.list_runs(project.id)]
    runs.sort(key=lambda run: run.timestamp)
    assert [run.name for run in runs] == ["drift check 1", "drift check 2"]
    for run, check in zip(runs, (same, shifted), strict=True):
        kinds = [
            (v.metric_value_location.metric.params["type"].rsplit(":", 1)[-1], v)
            for v in run.metric_results.values()
        ]
        means = {
            v.metric_value_location.metric.params["column"]: v.value
            for kind, v in kinds
            if kind == "MeanValue"
        }
        assert means[DRIFT_FLAG] == pytest.approx(check["drift_share"])
        # The check's PSI of the PD and its largest CSI, as the dashboard plots them.
        stability = check["stability"]
        assert means[SCORE_PSI] == pytest.approx(stability[PREDICTION]["psi"])
        csi = [f["psi"] for c, f in stability.items() if c != PREDICTION]
        assert means[LARGEST_CSI] == pytest.approx(max(csi))
        assert run.metadata["dataset_drift"] == str(check["dataset_drift"]).lower()
        assert run.metadata["drifted_features"] == ",".join(check["drifted_features"])
        drift_scores = [v for kind, v in kinds if kind == "ValueDrift"]
        assert len(drift_scores) == len(check["features"]) + 1  # every feature and the PD
    # The older run keeps its figures (what the dashboard plots) but not its plots.
    assert not runs[0].widgets and runs[1].widgets
    titles = [p.title for p in workspace.get_dashboard(project.id).panels]
    assert titles == [p.title for p in dashboard_panels()]
    assert not [
        p
        for p in workspace.get_dashboard(project.id).panels
        if p.plot_params.get("plot_type") == "counter"
    ]  # Evidently's counter shows a 0 as "no value"


def test_evidently_ui_serves_the_project_and_its_drift_share_over_time(checked, tmp_path):
    settings, results = checked
    port = free_port()
    evidently = str(Path(sys.executable).with_name("evidently"))
    argv = [evidently, "ui", "--workspace", str(settings.monitor_dir / "workspace")]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    # DO_NOT_TRACK: Evidently's usage telemetry would call out to the internet.
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    ui = ManagedProcess.launch(
        "evidently ui", argv, port=port, log_path=tmp_path / "ui.log", env=env
    )
    try:
        ui.wait_http("/api/projects", timeout=120)
        assert "<html" in requests.get(ui.url, timeout=10).text.lower()
        (project,) = requests.get(f"{ui.url}/api/projects", timeout=10).json()
        share = {"metric": "evidently:metric_v2:MeanValue", "metric_labels": {"column": DRIFT_FLAG}}
        query = {"series_filter": [{"tags": [], "metadata": {}, **share}]}
        series = requests.post(
            f"{ui.url}/api/v2/snapshots/{project['id']}/data_series_batch", json=query, timeout=30
        ).json()["series"]
        assert len(series) == 1
        assert series[0]["values"] == pytest.approx([r["drift_share"] for r in results])
    finally:
        ui.stop()


def test_a_workspace_made_by_an_earlier_release_gets_the_current_dashboard(tmp_path):
    from evidently.sdk.panels import counter_panel
    from evidently.ui.workspace import Workspace

    from app.monitoring.workspace import _metric, open_project

    old = Workspace(str(tmp_path)).create_project("credit_risk drift")
    share = _metric("MeanValue", "drift share", column=DRIFT_FLAG)
    old.dashboard.add_panel(counter_panel("Share of drifted features (latest)", [share]))
    workspace, project = open_project(tmp_path, "credit_risk drift")
    assert project.id == old.id  # the same project, its runs kept
    titles = [p.title for p in workspace.get_dashboard(project.id).panels]
    assert titles == [p.title for p in dashboard_panels()]
