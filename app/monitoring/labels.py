"""Outcomes (labels) of past decisions: reading and validating the file that brings them.

Outcomes come months after a decision, as a labels file keyed by request_id or the dataset's
entity key, the prediction log's two ids.
Each column is checked on its own, and a bad file is refused with a LabelsError that names the
file, the column and a few offending rows, so whoever built it can find them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.errors import CreditRiskError

LABEL_OPTIONAL = ("request_id", "observed_at")

# How many offending keys/values an error message lists before "...": enough to find them in
# the file, short enough to stay one readable line.
_MAX_EXAMPLES = 5

_TRUE_STRINGS = {"1", "true"}
_FALSE_STRINGS = {"0", "false"}


class LabelsError(CreditRiskError):
    """The outcomes (labels) file is missing, unreadable or wrongly shaped."""


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


def _require_columns(frame: pd.DataFrame, source: str, key: str) -> None:
    missing = [c for c in (key, "defaulted") if c not in frame.columns]
    if missing:
        raise LabelsError(
            f"{source}: missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(map(str, frame.columns)) or 'none'})"
        )


def _ids(values: pd.Series, source: str) -> pd.Series:
    """A key column as text, none missing."""
    null = values.isna()
    if null.any():
        raise LabelsError(
            f"{source}: column '{values.name}' has {int(null.sum())} missing value(s), "
            f"first at data row {int(np.flatnonzero(null)[0]) + 1}"
        )
    # The prediction log stores IDs as strings; an integer ID column must match them.
    return values.astype(str)


def _outcomes(values: pd.Series, ids: pd.Series, source: str) -> pd.Series:
    """`defaulted` as int64 0/1; bad rows are named by their `ids`."""
    parsed = values.astype("object").map(_parse_defaulted)
    bad = parsed.isna()
    if bad.any():
        examples = [
            f"{ids.name} {ids.at[i]!r}: " + ("missing" if pd.isna(value) else repr(value))
            for i, value in values[bad].items()
        ]
        raise LabelsError(
            f"{source}: column 'defaulted' must be 0/1/True/False with no missing values; "
            f"{int(bad.sum())} bad row(s), e.g. {_examples(examples)}"
        )
    return parsed.astype("int64")


def _observed_times(values: pd.Series, source: str) -> pd.Series:
    """`observed_at` as UTC timestamps (missing stays missing)."""
    # Naive times are taken as UTC, the prediction log's zone.
    times = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    unparsable = times.isna() & values.notna()
    if unparsable.any():
        first = values[unparsable].iloc[0]
        raise LabelsError(
            f"{source}: column 'observed_at' has {int(unparsable.sum())} value(s) that are "
            f"not timestamps, e.g. {first!r}"
        )
    return times


def _require_unique(labels: pd.DataFrame, source: str, entity: str) -> None:
    # One outcome per key: with request_id, an applicant may have several applications; without
    # it, a second row for an applicant would make "which decision?" ambiguous.
    key = "request_id" if "request_id" in labels.columns else entity
    counts = labels[key].value_counts()
    duplicated = counts[counts > 1]
    if len(duplicated):
        named = [f"{value!r} ({count} rows)" for value, count in duplicated.items()]
        raise LabelsError(
            f"{source}: {len(duplicated)} duplicate {key} value(s), each must appear once: "
            f"{_examples(named)}"
        )


def validate_labels(frame: pd.DataFrame, source: str, key: str) -> pd.DataFrame:
    """The labels as <key>/defaulted[/request_id][/observed_at], `key` the dataset's entity
    key; else LabelsError."""
    _require_columns(frame, source, key)
    # request_id first: when a file has it, it is the key and names the rows in messages.
    keys = [c for c in ("request_id", key) if c in frame.columns]
    # Extra columns are dropped so they cannot collide with prediction-log columns in a merge.
    wanted = (key, "defaulted", *LABEL_OPTIONAL)
    labels = frame[[c for c in wanted if c in frame.columns]].copy()
    labels = labels.reset_index(drop=True)
    for key in keys:
        labels[key] = _ids(labels[key], source)
    labels["defaulted"] = _outcomes(labels["defaulted"], labels[keys[0]], source)
    if "observed_at" in labels.columns:
        labels["observed_at"] = _observed_times(labels["observed_at"], source)
    _require_unique(labels, source, key)
    return labels


def _read(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            # All text: pandas would otherwise turn "007" into 7 and miss the logged ID.
            return pd.read_csv(path, dtype=str)
        raise LabelsError(f"labels file {path}: expected a .parquet or .csv file")
    # Arrow and pandas parse errors are ValueError subclasses; I/O problems are OSError.
    except (OSError, ValueError) as exc:
        raise LabelsError(f"cannot read labels file {path}: {exc}") from exc


def load_labels(path: Path, key: str) -> pd.DataFrame:
    """Read and validate an outcomes file (.parquet or .csv).

    Required columns: `key` (the dataset's entity key) and defaulted
    (0/1/True/False, none missing); optional: request_id (then the key, else `key` is) and
    observed_at (when the outcome was
    known). Returns those columns only: IDs as str, defaulted as int64 0/1, observed_at as UTC
    timestamps. Raises LabelsError naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"labels file not found: {path}")
    return validate_labels(_read(path), f"labels file {path}", key)
