"""Each drift check as a run of a local Evidently workspace, for `evidently ui --workspace`.

A run is the check's own Evidently snapshot (one ValueDrift per column, with its test) plus
two figures Evidently computes from the per-feature verdicts: the mean of the 0/1 drift flags
(the check's drift share) and their sum (drifted features). The check itself never runs
Evidently's DriftedColumnsCount (it would test every column twice), so the flags are the
cheap, exact way to put the drift share on the project's dashboard over time. The check's PSI
of the PD and its largest CSI (app.training.stability) are added the same way, as the mean of
a one-row column each.

A full run weighs ~0.4 MB (its plots); the newest `keep_full` runs keep them and older
runs are rewritten with their figures only (~20 kB), so a busy monitor's history stays small.
Writing is best effort: `DriftWorkspace.record` logs a failure and returns False, never raises.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from app.config import Settings
from app.domain import PREDICTION
from app.monitoring.drift import DriftResult
from app.monitoring.stability_view import headline

log = logging.getLogger(__name__)

# 1 for each drifted feature, 0 for the others: MeanValue of it is the drift share.
DRIFT_FLAG = "feature_drifted"
# One-row columns whose MeanValue is the check's PSI of the PD and its largest CSI.
SCORE_PSI, LARGEST_CSI = "score_psi", "largest_csi"
PROJECT_DESCRIPTION = (
    "Live decisions' features and PD against the champion's training data, one run per check "
    "of the drift monitor."
)


@dataclass(frozen=True)
class WorkspaceConfig:
    directory: Path
    project: str
    keep_full: int


def workspace_config(settings: Settings) -> WorkspaceConfig:
    return WorkspaceConfig(
        directory=Path(settings.monitor_workspace_dir),
        project=f"{settings.model_name} drift",
        keep_full=settings.monitor_keep_reports,
    )


def _metric(metric: str, legend: str, **labels: str) -> Any:
    from evidently.sdk.models import PanelMetric

    return PanelMetric(legend=legend, metric=metric, metric_labels=labels)


def dashboard_panels() -> list[Any]:
    """The project's panels: drift share and count, PSI and CSI, the PD's and each feature's
    drift score, over time. No counter panels: Evidently 0.7.23's UI shows a counter whose
    value is 0 as "no value" (its `value ? value : "no value"`), and 0 drifted features is the
    usual reading."""
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel, text_panel

    return [
        text_panel(title="Drift of live traffic", description=PROJECT_DESCRIPTION),
        line_plot_panel(
            "Share of drifted features",
            [_metric("MeanValue", "drift share", column=DRIFT_FLAG)],
            size="half",
        ),
        bar_plot_panel(
            "Drifted features per check",
            [_metric("SumValue", "drifted features", column=DRIFT_FLAG)],
            size="half",
        ),
        line_plot_panel(
            "Stability: PSI of the PD, largest CSI",
            [
                _metric("MeanValue", "PSI of the PD", column=SCORE_PSI),
                _metric("MeanValue", "largest CSI", column=LARGEST_CSI),
            ],
            description="On the bins frozen from the champion's training rows: below 0.10 "
            "stable, 0.10-0.25 watch, 0.25 and above act.",
        ),
        line_plot_panel(
            "Drift score of the predicted PD",
            [_metric("ValueDrift", "PD", column=PREDICTION)],
            size="half",
        ),
        line_plot_panel(
            "Drift score per feature",
            [_metric("ValueDrift", "{{column}}")],
            description="Wasserstein (numbers) or Jensen-Shannon (categories) distance.",
            size="half",
        ),
    ]


def add_dashboard(project: Any, workspace: Any) -> None:
    """The project's dashboard as `dashboard_panels` has it, replacing an older one (a
    workspace made by an earlier release keeps its runs and gets the current panels)."""
    panels = dashboard_panels()
    current = [p.title for p in workspace.get_dashboard(project.id).panels]
    if current == [p.title for p in panels]:
        return
    project.dashboard.clear_dashboard()
    for panel in panels:
        project.dashboard.add_panel(panel)


def open_project(directory: Path, name: str) -> tuple[Any, Any]:
    """The workspace at `directory` and its project `name`, both made on first use."""
    directory.mkdir(parents=True, exist_ok=True)  # first: a bad path fails before the import
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(directory))
    found = workspace.search_project(name)
    project = found[0] if found else workspace.create_project(name, description=PROJECT_DESCRIPTION)
    add_dashboard(project, workspace)
    return workspace, project


def _timestamp(result: DriftResult) -> datetime:
    # Naive UTC, as Evidently's own runs are naive: the UI compares them with naive bounds.
    return datetime.fromisoformat(result.checked_at).astimezone(UTC).replace(tzinfo=None)


def _labels(result: DriftResult) -> tuple[dict[str, Any], list[str]]:
    """The run's metadata (filterable in the UI) and tags."""
    metadata = {
        "check": str(result.extra.get("check", "")),
        "model_version": str(result.model_version or ""),
        "rows": str(result.rows),
        "drift_share": f"{result.drift_share:.4f}",
        "dataset_drift": str(result.dataset_drift).lower(),
        "drifted_features": ",".join(result.drifted_features),
        "window_start": result.window_start or "",
        "window_end": result.window_end or "",
        # What the check did about retraining: submitted, suppressed, failed, or "".
        "retraining": str(result.extra.get("trigger", {}).get("action", "")),
    }
    return metadata, ["drift_check", "drift" if result.dataset_drift else "no_drift"]


def check_run(result: DriftResult, snapshot: Any) -> Any:
    """The check's snapshot with the drift share and count added, dated and labelled."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.core.report import Snapshot
    from evidently.metrics import MeanValue, SumValue

    def run(frame: pd.DataFrame, metrics: list[Any]) -> Any:
        definition = DataDefinition(numerical_columns=list(frame.columns))
        data = Dataset.from_pandas(frame, data_definition=definition)
        return Report(metrics).run(data).to_snapshot_model()

    flags = pd.DataFrame({DRIFT_FLAG: [float(f.drifted) for f in result.features]})
    parts = [run(flags, [MeanValue(column=DRIFT_FLAG), SumValue(column=DRIFT_FLAG)])]
    stability = _stability_row(result)
    if stability is not None:
        parts.append(run(stability, [MeanValue(column=c) for c in stability.columns]))
    parts.append(snapshot.to_snapshot_model())  # the check's own, last as before
    metadata, tags = _labels(result)
    merged = parts[-1].copy(
        update={
            "name": f"drift check {metadata['check']}",
            "timestamp": _timestamp(result),
            "metadata": metadata,
            "tags": tags,
            "metric_results": _without_plots(
                {k: v for p in parts for k, v in p.metric_results.items()}
            ),
            "top_level_metrics": [m for p in parts for m in p.top_level_metrics],
            "widgets": [w for p in parts for w in p.widgets],
        }
    )
    return Snapshot.load_model(merged)


def _stability_row(result: DriftResult) -> pd.DataFrame | None:
    """One row: the check's PSI of the PD and its largest CSI (those it has); None without."""
    score, largest = headline(result.stability)
    row = {} if score is None else {SCORE_PSI: score}
    if largest is not None:
        row[LARGEST_CSI] = largest[1]
    return pd.DataFrame([row]) if row else None


def _without_plots(results: dict[Any, Any]) -> dict[Any, Any]:
    # Each result's own plots repeat the snapshot's `widgets`, which are what the UI shows
    # (and downloads): half the bytes and the time of writing a run.
    return {k: r.copy(update={"widget": []}) for k, r in results.items()}


def figures_only(model: Any) -> Any:
    """A stored run without its plots: the values the dashboard reads stay."""
    results = _without_plots(model.metric_results)
    return model.copy(update={"metric_results": results, "widgets": [], "tests_widgets": []})


class DriftWorkspace:
    """Adds drift checks to the workspace; opened on first use and again after a failure."""

    def __init__(self, config: WorkspaceConfig) -> None:
        self.config = config
        self.failures = 0
        self._opened: tuple[Any, Any] | None = None

    def record(self, result: DriftResult, snapshot: Any) -> bool:
        """Add the check as a run; False (logged, counted) if it could not be written."""
        try:
            if self._opened is None:
                self._opened = open_project(self.config.directory, self.config.project)
            workspace, project = self._opened
            workspace.add_run(project.id, check_run(result, snapshot))
            self._slim_older(workspace, project.id)
            return True
        except Exception as exc:  # the check's result is kept elsewhere; never fail it
            self._opened = None
            self.failures += 1
            log.warning("drift check not added to the Evidently workspace: %s", exc)
            return False

    def _slim_older(self, workspace: Any, project_id: Any) -> None:
        """Drop the plots of runs older than the newest `keep_full`, newest first, stopping
        at the first one already slim (so one run is rewritten per check)."""
        # Run ids are UUIDv7 (Evidently's new_id): their order is the order they were added.
        older = sorted(workspace.list_runs(project_id), key=str)[: -self.config.keep_full]
        for run_id in reversed(older):
            model = workspace.get_run(project_id, run_id)
            if not model.widgets:
                break
            # In place, keeping the run's id: the workspace API can add or delete a run but
            # not replace one, so through the local state it is stored in.
            workspace.state.write_snapshot(project_id, run_id, figures_only(model))
