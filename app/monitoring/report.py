"""One self-contained HTML page on live decisions: scores, approval and AUC per period, drift."""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.config import Settings
from app.domain import APPROVE, PREDICTION
from app.errors import CreditRiskError
from app.fs import atomic_write
from app.monitoring.fairness_view import fairness_fields, fairness_section
from app.monitoring.htmlparts import chart, html_table, note
from app.monitoring.outcomes import join_outcomes, prediction_columns
from app.monitoring.performance import performance_by_period
from app.monitoring.stability_view import BANDS_NOTE, latest_stability, stability_fields
from app.times import parse_utc
from app.training.calibration import calibration_by_grade, scale_of

REPORT_NAME = "report.html"
# Drift records under monitor_dir: the live monitor's (store.py) and `jobs.monitor drift`'s.
DRIFT_FOLDERS = {"live": "results", "batch": "batch"}
# The table lists the newest checks only (a monitor keeps every record); the chart shows all.
MAX_DRIFT_ROWS = 30
NO_OUTCOMES = "no outcomes recorded yet"
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}"
    "table{border-collapse:collapse;font-size:.9em;margin:.5em 0 1.5em}"
    "td,th{border-bottom:1px solid #ddd;padding:.2em .6em;text-align:right}"
    "td.t,th.t{text-align:left}p.none{color:#777;font-style:italic}img{max-width:100%}"
)


# --- inputs ----------------------------------------------------------------------------------
def read_decisions(settings: Settings) -> pd.DataFrame:
    """Answered decisions in the prediction log (possibly none), only the columns reported."""
    from app.predictions.log import read_prediction_log
    from app.predictions.schema import answered, schema_for

    # Only these columns are read: the features of millions of records would not fit.
    dataset = settings.load_dataset()
    columns = prediction_columns(dataset.entity_key)
    table = read_prediction_log(settings.prediction_log_dir, schema_for(dataset), columns)
    return answered(table.to_pandas()).reset_index(drop=True)


def read_drift_history(monitor_dir: Path) -> tuple[pd.DataFrame, int]:
    """Every stored drift check in time order, and how many records could not be read."""
    rows, unreadable = [], 0
    for source, folder in DRIFT_FOLDERS.items():
        for path in sorted((Path(monitor_dir) / folder).glob("drift-*.json")):
            try:
                record = json.loads(path.read_text())
                rows.append(
                    {
                        # A naive time (hand-written) is taken as UTC, as the log's times.
                        "checked_at": pd.Timestamp(parse_utc(record["checked_at"], "checked_at")),
                        "source": source,
                        "rows": int(record["rows"]),
                        "drift_share": float(record["drift_share"]),
                        "dataset_drift": bool(record["dataset_drift"]),
                        "drifted_features": ", ".join(record.get("drifted_features") or []),
                        "model_version": record.get("model_version") or "",
                        **stability_fields(record),
                        **fairness_fields(record),
                    }
                )
            # A record being written by another version, or cut short, must not stop the page.
            except (OSError, ValueError, KeyError, TypeError, CreditRiskError):
                unreadable += 1
    history = pd.DataFrame(rows, columns=["checked_at", "source", "rows", "drift_share"])
    if rows:
        history = pd.DataFrame(rows).sort_values("checked_at", kind="stable")
    return history.reset_index(drop=True), unreadable


# --- charts ----------------------------------------------------------------------------------
def _score_chart(decisions: pd.DataFrame, threshold: float) -> str:
    def draw(axes: Any) -> None:
        bins = np.linspace(0.0, 1.0, 41)
        for variant, group in decisions.groupby("variant", sort=True):
            axes.hist(group[PREDICTION], bins=bins, histtype="step", linewidth=1.5, label=variant)
        axes.axvline(threshold, color="crimson", linestyle="--", label=f"threshold {threshold:.3f}")
        axes.set(xlabel="probability of default", ylabel="decisions", xlim=(0, 1))
        axes.legend(fontsize="small")

    return chart(draw, "histogram of the probability of default by variant")


def _period_chart(table: pd.DataFrame, column: str, label: str, reference: float | None) -> str:
    periods = list(dict.fromkeys(table["period"]))  # the table is in time order
    position = {p: i for i, p in enumerate(periods)}

    def draw(axes: Any) -> None:
        for variant, group in table.dropna(subset=[column]).groupby("variant", sort=True):
            axes.plot(group["period"].map(position), group[column], marker="o", label=variant)
        if reference is not None and not math.isnan(reference):
            axes.axhline(reference, color="gray", linestyle="--", label="champion test set")
        step = math.ceil(len(periods) / 10)  # at most 10 tick labels: readable when rotated
        axes.set_xticks(range(0, len(periods), step), periods[::step], rotation=30, ha="right")
        axes.set(ylabel=label, ylim=(0, 1.02), xlim=(-0.5, len(periods) - 0.5))
        axes.legend(fontsize="small")

    return chart(draw, f"{label} per period and variant")


def _drift_chart(history: pd.DataFrame) -> str:
    def draw(axes: Any) -> None:
        times = history["checked_at"].dt.tz_localize(None)  # matplotlib plots naive UTC
        for source, group in history.groupby("source", sort=True):
            axes.plot(times[group.index], group["drift_share"], marker=".", label=source)
        drifted = history["dataset_drift"]
        if drifted.any():
            shares = history["drift_share"][drifted]
            axes.scatter(times[drifted], shares, color="crimson", zorder=3, label="dataset drift")
        axes.set(xlabel="checked at (UTC)", ylabel="share of features drifted", ylim=(0, 1.02))
        axes.legend(fontsize="small")
        axes.figure.autofmt_xdate()

    return chart(draw, "drift share over time; red: dataset drift")


def _calibration_chart(calibration: pd.DataFrame) -> str:
    def draw(axes: Any) -> None:
        top = float(max(calibration["interval_high"].max(), calibration["predicted_pd"].max()))
        axes.plot([0, top], [0, top], color="gray", linestyle="--", label="observed = predicted")
        for variant, group in calibration.groupby("variant", sort=True):
            below = group["observed_rate"] - group["interval_low"]
            above = group["interval_high"] - group["observed_rate"]
            axes.errorbar(group["predicted_pd"], group["observed_rate"], yerr=[below, above],
                          fmt="o", capsize=3, label=variant)  # fmt: skip
        axes.set(xlabel="mean predicted PD of the grade", ylabel="observed default rate")
        axes.legend(fontsize="small")

    return chart(draw, "observed default rate against predicted PD per grade, with intervals")


# --- HTML ------------------------------------------------------------------------------------
def _score_section(decisions: pd.DataFrame, threshold: float) -> str:
    if decisions.empty:
        return note("no decisions logged yet")
    scores = decisions.groupby("variant", sort=True).agg(
        decisions=(PREDICTION, "size"),
        mean_pd=(PREDICTION, "mean"),
        median_pd=(PREDICTION, "median"),
        p90_pd=(PREDICTION, lambda s: s.quantile(0.9)),
        approval_rate=("decision", lambda d: (d == APPROVE).mean()),
    )
    return _score_chart(decisions, threshold) + html_table(scores.reset_index())


def _auc_part(table: pd.DataFrame, baseline: dict[str, float]) -> str:
    if int(table["labelled"].sum()) == 0:
        return note(NO_OUTCOMES)
    if table["auc"].isna().all():
        return note("no period has enough outcomes of both kinds for an AUC yet (see note)")
    return _period_chart(table, "auc", "AUC", baseline.get("test_auc"))


def _period_section(table: pd.DataFrame | None, baseline: dict[str, float]) -> str:
    if table is None:
        return note("no decisions logged yet")
    shown = table.drop(columns=[c for c in table.columns if c.endswith("_delta")])
    charts = _period_chart(table, "approval_rate", "approval rate", None)
    return charts + _auc_part(table, baseline) + html_table(shown, {"auc": 4, "ks": 4})


def _drift_section(history: pd.DataFrame, unreadable: int) -> str:
    skipped = note(f"{unreadable} unreadable drift record(s) skipped") if unreadable else ""
    if history.empty:
        return note("no drift checks recorded yet") + skipped
    newest = history.iloc[::-1].head(MAX_DRIFT_ROWS).copy()
    newest["checked_at"] = newest["checked_at"].dt.strftime("%Y-%m-%d %H:%M:%S UTC")
    plural = "s" if len(history) != 1 else ""
    caption = f"<p>{len(history):,} check{plural}; the newest {len(newest)} listed.</p>"
    shown = newest.drop(columns=["stability", "fairness"], errors="ignore")
    return _drift_chart(history) + caption + html_table(shown, {"drift_share": 3}) + skipped


def _stability_section(history: pd.DataFrame) -> str:
    newest, table = latest_stability(history)
    if newest is None:
        return note("no drift check with stability figures yet")
    when = f"{newest['checked_at']:%Y-%m-%d %H:%M:%S} UTC"
    caption = f"<p>Check of {when} ({newest['source']}). {html.escape(BANDS_NOTE)}</p>"
    return caption + html_table(table, {"value": 4})


def _calibration_section(calibration: pd.DataFrame | None, confidence: float) -> str:
    if calibration is None or calibration.empty:
        return note(NO_OUTCOMES)
    caption = (
        f"<p>Per PD grade: the observed default rate with its {confidence:.0%} Jeffreys "
        "interval against the grade's mean predicted PD; flag: the predicted PD lies below "
        "(under) or above (over) the interval.</p>"
    )
    digits = {"predicted_pd": 4, "observed_rate": 4, "interval_low": 4, "interval_high": 4}
    return _calibration_chart(calibration) + caption + html_table(calibration, digits)


def render_report(
    decisions: pd.DataFrame,
    table: pd.DataFrame | None,
    history: pd.DataFrame,
    *,
    threshold: float,
    baseline: dict[str, float] | None = None,
    unreadable: int = 0,
    calibration: pd.DataFrame | None = None,
    confidence: float = 0.95,
) -> str:
    """The page: `table` is performance_by_period's output (None when nothing was decided)."""
    labelled = 0 if table is None else int(table["labelled"].sum())
    summary = (
        f"{len(decisions):,} answered decisions, {labelled:,} with an outcome, "
        f"{len(history):,} drift checks. Generated {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC."
    )
    sections = [
        ("Score distribution", _score_section(decisions, threshold)),
        ("Approval rate and AUC per period", _period_section(table, baseline or {})),
        ("Calibration by PD grade", _calibration_section(calibration, confidence)),
        ("Drift share over time", _drift_section(history, unreadable)),
        ("Population and characteristic stability", _stability_section(history)),
        ("Fair lending: approvals by group", fairness_section(history)),
    ]
    body = "".join(f"<h2>{title}</h2>{content}" for title, content in sections)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Credit decisions report</title><style>{_STYLE}</style></head><body>"
        f"<h1>Credit decisions report</h1><p>{html.escape(summary)}</p>{body}</body></html>"
    )


def write_report(
    settings: Settings,
    labels: pd.DataFrame | None = None,
    *,
    period: str = "D",
    baseline: dict[str, float] | None = None,
    decisions: pd.DataFrame | None = None,
    out_path: Path | None = None,
    table: pd.DataFrame | None = None,
    calibration: pd.DataFrame | None = None,
) -> Path:
    """Write the report (default `<monitor_dir>/report.html`, atomically) and return its path.

    `labels` are validated outcomes (labels.load_labels); none means no AUC yet. `decisions`
    are answered decisions already read (default: the prediction log's); `baseline` the
    champion's logged test metrics, drawn as the AUC's reference line; `table` their
    performance_by_period and `calibration` calibration_by_grade, already computed (the join is
    not done twice).
    """
    if decisions is None:
        decisions = read_decisions(settings)
    wanted = calibration is None and labels is not None
    if (table is None or wanted) and not decisions.empty:
        key = settings.load_dataset().entity_key
        joined = join_outcomes(decisions, _or_none_yet(labels, key), key)
        table = performance_by_period(joined, period, baseline) if table is None else table
        if wanted:
            scale = scale_of(settings.calibration_grades)
            calibration = calibration_by_grade(joined, scale, settings.calibration_confidence)
    history, unreadable = read_drift_history(settings.monitor_dir)
    page = render_report(
        decisions,
        table,
        history,
        threshold=settings.threshold(),
        baseline=baseline,
        unreadable=unreadable,
        calibration=calibration,
        confidence=settings.calibration_confidence,
    )
    path = Path(out_path or Path(settings.monitor_dir) / REPORT_NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, page)
    return path


def _or_none_yet(labels: pd.DataFrame | None, key: str) -> pd.DataFrame:
    """No outcomes yet: every decision joins as unlabelled."""
    return pd.DataFrame(columns=[key, "defaulted"]) if labels is None else labels
