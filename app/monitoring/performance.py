"""Realised performance of live decisions once outcomes (defaulted or not) arrive.

Decisions joined to their outcomes (outcomes.py) are summarised per period and variant, with
the same AUC and KS code the training run logs, so a live figure can be compared with the
model's test metrics; format_table prints the summary.

Pure pandas/numpy: no Ray, no MLflow, nothing runs on import.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from app.domain import APPROVE, PREDICTION

# Live AUC/KS are computed by the functions that computed the training run's test_auc/test_ks,
# or a delta would partly measure the code difference.
from app.training.metrics import ks_statistic, roc_auc

# What performance_by_period reads from join_outcomes' output (its rows need no IDs).
# What the table reads of the joined frame (neither id: a period is about decisions, not whom).
_PERFORMANCE_INPUT = ("logged_at", "variant", "model_version", PREDICTION, "decision", "defaulted")

# Metric names as the training run logs them (prefix "test_" + evaluate_scores keys), mapped to
# the live column they are compared with.
BASELINE_METRICS = {"test_auc": "auc", "test_ks": "ks", "test_approval_rate": "approval_rate"}

PERFORMANCE_COLUMNS = [
    "period",
    "variant",
    "model_versions",
    "decisions",
    "labelled",
    "default_rate",
    "auc",
    "ks",
    "approval_rate",
]
DELTA_COLUMNS = [f"{live}_delta" for live in BASELINE_METRICS.values()]


def _check_period(period: str) -> None:
    try:
        freq = pd.Period("2000-01-01", freq=period).freq
    except (ValueError, TypeError) as exc:
        raise ValueError(f"period must be a pandas period alias such as D, W or M: {exc}") from exc
    # "2W" is accepted by to_period but still yields one-week periods, which would mislead.
    if freq.n != 1:
        raise ValueError(f"period must be a single unit (D, W, M, ...), got {period!r}")


def _group_metrics(group: pd.DataFrame, min_labelled: int) -> dict[str, Any]:
    labelled = group[group["defaulted"].notna()]
    y = labelled["defaulted"].to_numpy(dtype="int64")
    scores = labelled[PREDICTION].to_numpy(dtype="float64")
    n_labelled = len(y)
    defaults = int(y.sum())
    auc = ks = math.nan
    if n_labelled == 0:
        note = "no outcomes yet"
    elif n_labelled < min_labelled:
        note = f"auc/ks need >= {min_labelled} labelled, have {n_labelled}"
    elif defaults in (0, n_labelled):
        note = "auc/ks undefined: " + ("no defaults" if defaults == 0 else "only defaults")
    else:
        note = ""
        auc, ks = roc_auc(y, scores), ks_statistic(y, scores)
    return {
        "model_versions": ",".join(sorted(group["model_version"].astype(str).unique())),
        "decisions": len(group),
        "labelled": n_labelled,
        "default_rate": defaults / n_labelled if n_labelled else math.nan,
        "auc": auc,
        "ks": ks,
        # Over every decision, labelled or not: approvals are known at decision time.
        "approval_rate": float((group["decision"] == APPROVE).mean()),
        "note": note,
    }


def _check_inputs(joined: pd.DataFrame, period: str, min_labelled: int) -> None:
    _check_period(period)
    if int(min_labelled) != min_labelled or min_labelled < 2:
        # Fewer than two rows can never hold both classes.
        raise ValueError(f"min_labelled must be an integer >= 2, got {min_labelled}")
    missing = [c for c in _PERFORMANCE_INPUT if c not in joined.columns]
    if missing:
        raise ValueError(f"joined outcomes are missing column(s): {', '.join(missing)}")


def _with_periods(joined: pd.DataFrame, period: str) -> pd.DataFrame:
    """A copy with each row's `_period` and `defaulted` as float 0/1/NaN; ValueError else."""
    frame = joined.copy()
    # Periods are calendar periods in UTC; dropping the zone first avoids pandas' warning and
    # makes "D" mean the UTC day whatever zone the timestamps carry.
    logged = pd.to_datetime(frame["logged_at"], utc=True).dt.tz_localize(None)
    frame["_period"] = logged.dt.to_period(period)
    # Accept bool or 0/1 outcomes with gaps; a float with NaN is what the metrics need.
    frame["defaulted"] = pd.to_numeric(frame["defaulted"].astype("object"), errors="raise")
    known = frame["defaulted"].dropna()
    if not known.isin((0.0, 1.0)).all():
        # A hand-built frame can skip join_outcomes' validation; a 2 would corrupt the AUC.
        raise ValueError(
            f"defaulted must be 0/1 or missing, got {known[~known.isin((0, 1))].iloc[0]}"
        )
    return frame


def performance_by_period(
    joined: pd.DataFrame,
    period: str = "W",
    baseline: dict[str, float] | None = None,
    min_labelled: int = 30,
) -> pd.DataFrame:
    """AUC, KS, default and approval rates per period of logged_at (UTC) and variant.

    `joined` is join_outcomes' output. One row per (period, variant) with decisions, in time
    order. Columns: period (str, e.g. "2024-01-01/2024-01-07" for W), variant, model_versions
    (every version that answered, comma-separated), decisions, labelled, default_rate (among
    labelled), auc, ks, approval_rate (share of decisions that are "approve"), then, with a
    baseline (keys test_auc, test_ks, test_approval_rate as the training run logs them),
    auc_delta, ks_delta and approval_rate_delta (live minus baseline; NaN for a missing key),
    and note, which says why auc/ks are NaN (fewer than `min_labelled` labelled rows, or one
    class only).
    """
    _check_inputs(joined, period, min_labelled)
    columns = PERFORMANCE_COLUMNS + (DELTA_COLUMNS if baseline is not None else []) + ["note"]
    if joined.empty:
        return pd.DataFrame(columns=columns)
    frame = _with_periods(joined, period)
    rows = []
    for (when, variant), group in frame.groupby(["_period", "variant"], sort=True):
        rows.append(
            {"period": str(when), "variant": variant, **_group_metrics(group, min_labelled)}
        )
    result = pd.DataFrame(rows)

    if baseline is not None:
        for key, live in BASELINE_METRICS.items():
            reference = baseline.get(key)
            result[f"{live}_delta"] = result[live] - (
                float(reference) if reference is not None else math.nan
            )
    return result[columns]


# --------------------------------------------------------------------------------------------
# Text output
# --------------------------------------------------------------------------------------------


def _cell(value: Any, signed: bool, digits: int) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "-"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        # Deltas carry their sign so a drop reads as a drop at a glance.
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return str(value)


def format_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A plain fixed-width text table: numbers right-aligned, text left, NaN as "-"."""
    headers = [str(c) for c in df.columns]
    cells = [
        [_cell(v, str(name).endswith("_delta"), digits) for v in df[name]] for name in df.columns
    ]
    numeric = [
        pd.api.types.is_numeric_dtype(df[name]) and not pd.api.types.is_bool_dtype(df[name])
        for name in df.columns
    ]
    widths = [
        max([len(h), *(len(c) for c in column)]) for h, column in zip(headers, cells, strict=True)
    ]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])]
    lines += [line([column[i] for column in cells]) for i in range(len(df))]
    if df.empty:
        lines.append("(no rows)")
    return "\n".join(lines)
