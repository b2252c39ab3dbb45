"""A check's window: what the monitor keeps of each answered decision, and its drift.

A row is a prediction-log record cut to time, model version, PD and the raw features, plus
the share of the replica's traffic it stands for (MonitorFeed samples under load).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from app.dataset import Dataset
from app.domain import APPROVE, PREDICTION
from app.monitoring.drift import DriftConfig, DriftResult, compute_drift
from app.predictions.schema import log_schema
from app.training import fair_lending
from app.training.fair_lending import Screen
from app.training.fairness import fairness_report, groups_of
from app.training.preprocess import FeatureEncoder
from app.training.reference import Reference
from app.training.stability import stability

# The share of the replica's traffic a row stands for (MonitorFeed samples under load).
SAMPLE_RATE = "sample_rate"


def window_schema(dataset: Dataset) -> pa.Schema:
    """What the monitor keeps of a prediction-log record: time, version, PD and the model
    columns of the dataset, nothing else. A list of what to keep, not of what to leave out: a
    field added to the log later (who asked, their key) never reaches the spool by default."""
    encoder = FeatureEncoder.for_dataset(dataset)
    full = log_schema(encoder)
    keep = ["request_id", "logged_at", "model_version", PREDICTION, "decision"]
    features = encoder.raw_columns
    return pa.schema(
        [full.field(n) for n in keep + features] + [pa.field(SAMPLE_RATE, pa.float64())]
    )


def window_sample_rate(window: pd.DataFrame) -> float:
    """Rows checked per row answered: kept rows over the traffic they stand for."""
    if window.empty:
        return 1.0
    rates = window[SAMPLE_RATE].astype("float64").fillna(1.0).clip(lower=1e-9)
    return round(float(len(rates) / (1.0 / rates).sum()), 4)


def check_window(
    tables: list[pa.Table], reference: Reference, config: DriftConfig, check: int
) -> tuple[DriftResult, Any]:
    """Drift of these spooled rows against the reference, as check number `check`; with
    Evidently's snapshot (for the HTML report)."""
    window = pa.concat_tables(tables).to_pandas()
    result, snapshot = compute_drift(
        reference.frame,
        window,
        reference.numeric,
        reference.categorical,
        config,
        with_report=True,
    )
    result.model_version = reference.model_version
    times = pd.to_datetime(window["logged_at"], utc=True).dropna()
    if not times.empty:
        result.window_start = times.min().isoformat()
        result.window_end = times.max().isoformat()
    result.extra["check"] = check
    result.extra[SAMPLE_RATE] = window_sample_rate(window)
    result.stability = window_stability(window, reference)
    result.fairness = window_fairness(window, config)
    return result, snapshot


def window_fairness(window: pd.DataFrame, config: DriftConfig) -> dict[str, list[dict[str, Any]]]:
    """Approvals as answered per group of each fairness grouping whose column the window
    holds (a protected column the model does not read is not logged, so not here), with the
    adverse impact ratio, Fisher's p-value and, for screened groupings, whether the group
    breaches the screen. Rows spooled before decisions were kept are left out."""
    if "decision" not in window.columns:
        return {}
    decided = window[window["decision"].notna()].reset_index(drop=True)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, grouping in config.groupings.items():
        if decided.empty or not fair_lending.grouping_present(grouping, list(decided.columns)):
            continue
        report = fairness_report(
            None,
            decided[PREDICTION].astype("float64").clip(0, 1).fillna(1.0),
            groups_of(decided, grouping),
            threshold=0.5,  # unused: the decisions as answered say who was approved
            approved=decided["decision"].eq(APPROVE).to_numpy(),
        )
        out[name] = _group_rows(name, report, config.screen)
    return out


def _group_rows(name: str, report: pd.DataFrame, screen: Screen | None) -> list[dict[str, Any]]:
    screened = bool(screen and screen.on and name in screen.groupings)
    found = fair_lending.findings({name: report}, screen) if screened else []
    breached = {f.group for f in fair_lending.breaches(found)}
    columns = ["group", "n", "approvals", "approval_rate", "approval_rate_ratio", "p_value"]
    rows = report[columns].astype(object).where(report[columns].notna(), None)
    return [
        {**row, "screened": screened, "breach": row["group"] in breached}
        for row in rows.to_dict("records")
    ]


def window_stability(window: pd.DataFrame, reference: Reference) -> dict[str, dict[str, Any]]:
    """PSI of the PD and CSI of each checked column on the reference's frozen bins, each row
    weighted by the traffic it stands for."""
    columns = [PREDICTION, *reference.numeric, *reference.categorical]
    grids = {c: reference.bins[c] for c in columns if c in reference.bins}
    if SAMPLE_RATE in window.columns:
        rates = window[SAMPLE_RATE].astype("float64").fillna(1.0).clip(lower=1e-9)
        weights = 1.0 / rates.to_numpy()
    else:
        weights = None
    return stability(grids, window, weights)
