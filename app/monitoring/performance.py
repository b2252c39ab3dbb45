"""Realised performance of live decisions once outcomes (defaulted or not) arrive.

Outcomes come months after a decision, as a labels file keyed by request_id or applicant_id.
They are joined to the prediction log's answered decisions (never shadow scores: those were
not what the applicant got) and summarised per period and variant, with the same AUC and KS
code the training run logs, so a live figure can be compared with the model's test metrics.

Pure pandas/numpy: no Ray, no MLflow, nothing runs on import.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.domain import APPROVE, PREDICTION
from app.errors import CreditRiskError
from app.predictions.log import answered as answered_only

# Live AUC/KS are computed by the functions that computed the training run's test_auc/test_ks,
# or a delta would partly measure the code difference.
from app.training.evaluate import ks_statistic, roc_auc

LABEL_REQUIRED = ("applicant_id", "defaulted")
LABEL_OPTIONAL = ("request_id", "observed_at")

PREDICTION_REQUIRED = (
    "request_id",
    "logged_at",
    "applicant_id",
    "variant",
    "shadow",
    "model_version",
    PREDICTION,
    "decision",
)
JOINED_COLUMNS = [
    "request_id",
    "applicant_id",
    "logged_at",
    "variant",
    "model_version",
    PREDICTION,
    "decision",
    "defaulted",
]

# What performance_by_period reads from join_outcomes' output (its rows need no IDs).
_PERFORMANCE_INPUT = tuple(c for c in JOINED_COLUMNS if c not in ("request_id", "applicant_id"))

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

# How many offending keys/values an error message lists before "...": enough to find them in
# the file, short enough to stay one readable line.
_MAX_EXAMPLES = 5

_TRUE_STRINGS = {"1", "true"}
_FALSE_STRINGS = {"0", "false"}


class LabelsError(CreditRiskError):
    """The outcomes (labels) file is missing, unreadable or wrongly shaped."""


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def _parse_defaulted(value: Any) -> float:
    """1.0 / 0.0 for an accepted outcome, NaN for anything else (missing included)."""
    # bool before int: True is an int in Python, and np.bool_ is neither.
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | np.integer | float | np.floating):
        # 1.0/0.0 are accepted because a nullable int column read through numpy becomes float.
        return float(value) if value in (0, 1) else math.nan
    if isinstance(value, str):
        # CSV is read as text (to keep IDs like "007" intact), so 0/1/True/False arrive here.
        text = value.strip().lower()
        if text in _TRUE_STRINGS:
            return 1.0
        if text in _FALSE_STRINGS:
            return 0.0
    return math.nan


def _examples(values: list[str]) -> str:
    shown = ", ".join(values[:_MAX_EXAMPLES])
    return shown + (", ..." if len(values) > _MAX_EXAMPLES else "")


def _validate_labels(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """The labels as applicant_id/defaulted[/request_id][/observed_at]; else LabelsError."""
    missing = [c for c in LABEL_REQUIRED if c not in frame.columns]
    if missing:
        raise LabelsError(
            f"{source}: missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    keys = [c for c in ("request_id", "applicant_id") if c in frame.columns]
    # Extra columns are dropped so they cannot collide with prediction-log columns in a merge.
    labels = frame[[c for c in (*LABEL_REQUIRED, *LABEL_OPTIONAL) if c in frame.columns]].copy()
    labels = labels.reset_index(drop=True)

    for key in keys:
        null = labels[key].isna()
        if null.any():
            raise LabelsError(
                f"{source}: column '{key}' has {int(null.sum())} missing value(s), "
                f"first at data row {int(np.flatnonzero(null)[0]) + 1}"
            )
        # The prediction log stores IDs as strings; an integer ID column must match them.
        labels[key] = labels[key].astype(str)

    parsed = labels["defaulted"].astype("object").map(_parse_defaulted)
    bad = parsed.isna()
    if bad.any():
        raw = labels["defaulted"][bad]
        examples = [
            f"{keys[0]} {labels.at[i, keys[0]]!r}: "
            + ("missing" if pd.isna(value) else repr(value))
            for i, value in raw.items()
        ]
        raise LabelsError(
            f"{source}: column 'defaulted' must be 0/1/True/False with no missing values; "
            f"{int(bad.sum())} bad row(s), e.g. {_examples(examples)}"
        )
    labels["defaulted"] = parsed.astype("int64")

    if "observed_at" in labels.columns:
        raw_times = labels["observed_at"]
        # Naive times are taken as UTC, the prediction log's zone.
        times = pd.to_datetime(raw_times, utc=True, errors="coerce", format="mixed")
        unparsable = times.isna() & raw_times.notna()
        if unparsable.any():
            first = raw_times[unparsable].iloc[0]
            raise LabelsError(
                f"{source}: column 'observed_at' has {int(unparsable.sum())} value(s) that are "
                f"not timestamps, e.g. {first!r}"
            )
        labels["observed_at"] = times

    # One outcome per key: with request_id, an applicant may have several applications; without
    # it, a second row for an applicant would make "which decision?" ambiguous.
    key = "request_id" if "request_id" in labels.columns else "applicant_id"
    counts = labels[key].value_counts()
    duplicated = counts[counts > 1]
    if len(duplicated):
        named = [f"{value!r} ({count} rows)" for value, count in duplicated.items()]
        raise LabelsError(
            f"{source}: {len(duplicated)} duplicate {key} value(s), each must appear once: "
            f"{_examples(named)}"
        )
    return labels


def load_labels(path: Path) -> pd.DataFrame:
    """Read and validate an outcomes file (.parquet or .csv).

    Required columns: applicant_id and defaulted (0/1/True/False, none missing); optional:
    request_id (then the key, else applicant_id is) and observed_at (when the outcome was
    known). Returns those columns only: IDs as str, defaulted as int64 0/1, observed_at as UTC
    timestamps. Raises LabelsError naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"labels file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            # All text: pandas would otherwise turn "007" into 7 and miss the logged ID.
            frame = pd.read_csv(path, dtype=str)
        else:
            raise LabelsError(f"labels file {path}: expected a .parquet or .csv file")
    # Arrow and pandas parse errors are ValueError subclasses; I/O problems are OSError.
    except (OSError, ValueError) as exc:
        raise LabelsError(f"cannot read labels file {path}: {exc}") from exc
    return _validate_labels(frame, f"labels file {path}")


# --------------------------------------------------------------------------------------------
# Join
# --------------------------------------------------------------------------------------------


def _answered(predictions: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in PREDICTION_REQUIRED if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions are missing column(s): {', '.join(missing)}")
    answered = answered_only(predictions)[list(PREDICTION_REQUIRED)].drop(columns="shadow")
    answered["logged_at"] = pd.to_datetime(answered["logged_at"], utc=True)
    for column in ("request_id", "applicant_id", "model_version"):
        answered[column] = answered[column].astype(str)
    return answered.reset_index(drop=True)


def _join_on_request(answered: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    merged = answered[["request_id", "applicant_id"]].merge(
        labels[["request_id", "applicant_id", "defaulted"]],
        on="request_id",
        how="left",
        suffixes=("", "_label"),
    )
    # A request_id whose applicant differs is a labels file built for another log (or a typo);
    # attaching its outcome would silently score the wrong person.
    clash = merged["applicant_id_label"].notna() & (
        merged["applicant_id_label"] != merged["applicant_id"]
    )
    if clash.any():
        row = merged[clash].iloc[0]
        raise LabelsError(
            f"labels: {int(clash.sum())} request_id(s) belong to a different applicant in the "
            f"prediction log, e.g. {row['request_id']!r}: log {row['applicant_id']!r}, "
            f"labels {row['applicant_id_label']!r}"
        )
    # The merge is one-to-one (labels are unique per request_id), so positions line up.
    return merged["defaulted"]


def _join_on_applicant(answered: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    label_columns = ["applicant_id", "defaulted"]
    if "observed_at" in labels.columns:
        label_columns.append("observed_at")
    candidates = labels[label_columns].merge(
        answered[["applicant_id", "logged_at", "request_id"]].reset_index(names="_row"),
        on="applicant_id",
    )
    if "observed_at" in candidates.columns:
        # An outcome known at observed_at cannot be about a decision made after it (e.g. a
        # reapplication after the default); a missing observed_at puts no limit.
        known = candidates["observed_at"]
        candidates = candidates[known.isna() | (candidates["logged_at"] <= known)]
    # request_id breaks logged_at ties so the choice does not depend on row order.
    latest = candidates.sort_values(["logged_at", "request_id"]).drop_duplicates(
        "applicant_id", keep="last"
    )
    outcome = pd.Series(pd.NA, index=answered.index, dtype="Int64")
    outcome.loc[latest["_row"].to_numpy()] = latest["defaulted"].to_numpy()
    return outcome


def join_outcomes(predictions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Every answered decision (shadow == False) with its outcome, if one has arrived.

    Joins on request_id when the labels have it, else on applicant_id: each label goes to
    that applicant's latest answered decision (logged at or before observed_at, when given);
    the applicant's earlier decisions stay unlabelled. Columns: request_id, applicant_id,
    logged_at (UTC), variant, model_version, probability_of_default, decision and defaulted
    (nullable Int64, <NA> = no outcome yet), sorted by logged_at. attrs["unmatched_labels"]
    counts labels that matched no answered decision.
    """
    labels = _validate_labels(labels, "labels")
    answered = _answered(predictions)
    if "request_id" in labels.columns:
        defaulted = _join_on_request(answered, labels)
    else:
        defaulted = _join_on_applicant(answered, labels)
    joined = answered.assign(defaulted=defaulted.astype("Int64").to_numpy())[JOINED_COLUMNS]
    joined = joined.sort_values(["logged_at", "request_id"], kind="stable").reset_index(drop=True)
    joined.attrs["unmatched_labels"] = int(len(labels) - joined["defaulted"].notna().sum())
    return joined


# --------------------------------------------------------------------------------------------
# Performance
# --------------------------------------------------------------------------------------------


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
    _check_period(period)
    if int(min_labelled) != min_labelled or min_labelled < 2:
        # Fewer than two rows can never hold both classes.
        raise ValueError(f"min_labelled must be an integer >= 2, got {min_labelled}")
    missing = [c for c in _PERFORMANCE_INPUT if c not in joined.columns]
    if missing:
        raise ValueError(f"joined outcomes are missing column(s): {', '.join(missing)}")

    columns = PERFORMANCE_COLUMNS + (DELTA_COLUMNS if baseline is not None else []) + ["note"]
    if joined.empty:
        return pd.DataFrame(columns=columns)

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
