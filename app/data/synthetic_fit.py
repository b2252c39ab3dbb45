"""The real rows as the synthetic generator needs them: numpy arrays per flat-file column, the
rows of each class, and the bounds and grids of the numeric columns.

The fit also checks the real rows against the spec, so a generator fed a broken file fails here
with the column's name rather than emitting rows that ingest would reject.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.data.synthetic_values import as_numbers, as_text, is_special, matches
from app.dataset import Dataset
from app.dataset.spec import Column


@dataclass(frozen=True)
class Numbers:
    """A numeric column of the real rows, as floats, and where it holds no number to move."""

    values: np.ndarray  # float64; special rows hold their number, or NaN
    special: np.ndarray  # bool: missing, a missing code, or outside the range (kept so)
    low: float  # clip bounds of jittered values: the range and the real min/max
    high: float
    grid: np.ndarray  # sorted distinct ordinary values, for snapping


@dataclass(frozen=True)
class Fitted:
    """What the generator needs from the real rows, as numpy arrays."""

    dataset: Dataset
    columns: dict[str, str]  # source name -> canonical name, in flat-file order, label last
    sources: dict[str, str]  # canonical name -> source name
    raw: dict[str, np.ndarray]  # source name -> real values as the file holds them
    numbers: dict[str, Numbers]  # numeric source columns
    is_positive: np.ndarray  # bool per real row
    positive_rows: np.ndarray  # indices of real positive rows
    negative_rows: np.ndarray
    positive: object  # the label's raw values as the file holds them
    negative: object

    @property
    def label(self) -> str:
        return next(reversed(self.columns))

    def spec(self, source: str) -> Column:
        return self.dataset.columns[self.columns[source]]


def source_columns(dataset: Dataset) -> dict[str, str]:
    """Canonical name -> flat-file (source) name of every data column and the label, in the
    flat file's order (`Dataset.raw_columns`)."""
    out: dict[str, str] = {}
    for table in dataset.tables.values():
        for column in table.feature_columns:
            spec = dataset.columns.get(column)
            if spec is not None and spec.type not in ("string", "timestamp"):
                out.setdefault(column, table.source_of(column))
    out[dataset.label] = dataset.spec.label.source or dataset.label
    return out


def _array(series: pd.Series) -> np.ndarray:
    """A column's values as numpy holds them (nullable extension types become float/object)."""
    if isinstance(series.dtype, np.dtype):
        return series.to_numpy()
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series):
        if series.isna().any() or pd.api.types.is_float_dtype(series.dtype):
            return series.to_numpy(dtype="float64", na_value=np.nan)
        return series.to_numpy(dtype="int64")
    return series.to_numpy(dtype=object, na_value=np.nan)


def _fit_numbers(source: str, values: np.ndarray, spec: Column) -> Numbers:
    numbers = as_numbers(values)
    special = is_special(values, numbers, spec)
    unparsed = np.isnan(numbers) & ~pd.isna(values)
    codes = as_text(values).isin([str(c) for c in spec.missing_codes]).fillna(False).to_numpy()
    low, high = spec.range if spec.range is not None else (-np.inf, np.inf)
    ordinary = numbers[~special]
    outside = (ordinary < low) | (ordinary > high)
    missing = np.isnan(numbers) & ~codes
    if (unparsed & ~codes).any() or outside.any() or (missing.any() and not spec.nullable):
        raise ValueError(
            f"real column {source} has values outside [{_shown(low)}, {_shown(high)}]"
            if spec.range is not None
            else f"real column {source} has values that are not numbers"
        )
    if ordinary.size:
        low, high = max(low, float(ordinary.min())), min(high, float(ordinary.max()))
    return Numbers(numbers, special, low, high, np.unique(ordinary))


def _shown(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _check_category(source: str, values: np.ndarray, spec: Column) -> None:
    text = as_text(values)
    allowed = {*spec.codes, *(str(c) for c in spec.missing_codes)}
    present = text.dropna()
    bad = set(present[~present.isin(allowed)].unique())
    if bad or (text.isna().any() and not spec.nullable):
        raise ValueError(f"real column {source} has values outside the schema: {sorted(bad)}")


def fit(real_df: pd.DataFrame, dataset: Dataset) -> Fitted:
    sources = source_columns(dataset)
    columns = {source: canonical for canonical, source in sources.items()}
    missing = [c for c in columns if c not in real_df.columns]
    if missing:
        raise ValueError(f"real data lacks columns: {', '.join(missing)}")
    label = sources[dataset.label]
    raw = {source: _array(real_df[source]) for source in columns}
    numbers: dict[str, Numbers] = {}
    for source, canonical in columns.items():
        spec = dataset.columns.get(canonical)
        if spec is None:  # the label
            continue
        if spec.type in ("int", "float"):
            numbers[source] = _fit_numbers(source, raw[source], spec)
        elif spec.type == "category":
            _check_category(source, raw[source], spec)
        elif not spec.nullable and pd.isna(raw[source]).any():
            raise ValueError(f"real column {source} has missing values")
    coding = dataset.spec.label
    is_positive = matches(raw[label], coding.positive)
    is_negative = matches(raw[label], coding.negative)
    if not (is_positive | is_negative).all() or not is_positive.any() or not is_negative.any():
        found = sorted({str(v) for v in pd.unique(raw[label])})
        raise ValueError(
            f"real {label} must hold both {coding.positive!r} and {coding.negative!r}, got {found}"
        )
    positive_rows, negative_rows = np.flatnonzero(is_positive), np.flatnonzero(~is_positive)
    return Fitted(
        dataset=dataset,
        columns=columns,
        sources=sources,
        raw=raw,
        numbers=numbers,
        is_positive=is_positive,
        positive_rows=positive_rows,
        negative_rows=negative_rows,
        # The file's own values (not the spec's): the output keeps the file's type and spelling.
        positive=raw[label][positive_rows[0]],
        negative=raw[label][negative_rows[0]],
    )
