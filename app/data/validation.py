"""Row validation: types, categories, ranges, nulls and duplicate keys, with a reason per row."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from app.data.schema import CATEGORIES, RANGES, TableSpec

REASON = "_reject_reason"
RAW = "_raw"


def output_schema(spec: TableSpec) -> pa.Schema:
    """Typed columns plus the reject reason and the original row (set only on rejects)."""
    return spec.arrow_schema.append(pa.field(REASON, pa.string())).append(
        pa.field(RAW, pa.string())
    )


def _blank(series: pd.Series, text: pd.Series | None = None) -> pd.Series:
    """Null, or (for text) empty after stripping; numbers and times can only be null."""
    if text is None:
        return series.isna()
    return series.isna() | text.eq("").fillna(False)


class _Reasons:
    """Every reason each row of a batch is bad, in the order they were found."""

    def __init__(self, n: int) -> None:
        self.rows: list[list[str]] = [[] for _ in range(n)]

    def flag(self, mask: np.ndarray | pd.Series, message: str | Callable[[int], str]) -> None:
        flags = mask.fillna(False) if isinstance(mask, pd.Series) else mask
        for i in np.flatnonzero(np.asarray(flags, dtype=bool)):
            self.rows[i].append(message(i) if callable(message) else message)

    def joined(self) -> pd.Series:
        return pd.Series(["; ".join(r) if r else None for r in self.rows], dtype="object")


def _coerce_int(column: str, values: pd.Series, missing: pd.Series, reasons: _Reasons):
    numbers = pd.to_numeric(values, errors="coerce")
    unparsed = numbers.isna() & ~missing
    reasons.flag(unparsed, lambda i: f"{column}={values[i]!r} is not a number")
    fractional = numbers.notna() & (numbers != np.floor(numbers.fillna(0)))
    reasons.flag(fractional, lambda i: f"{column}={values[i]!r} is not an integer")
    if column in RANGES:
        low, high = RANGES[column]
        outside = numbers.notna() & ~numbers.between(low, high)
        reasons.flag(outside, lambda i: f"{column}={numbers[i]:g} outside [{low}, {high}]")
    return numbers.where(numbers.notna() & ~fractional).astype("Int64")


def _coerce_timestamp(column: str, values: pd.Series, missing: pd.Series, reasons: _Reasons):
    stamps = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    reasons.flag(stamps.isna() & ~missing, lambda i: f"{column}={values[i]!r} is not a timestamp")
    return stamps


def _coerce_text(column: str, text: pd.Series, missing: pd.Series, reasons: _Reasons):
    if column in CATEGORIES:
        unknown = ~missing & ~text.isin(CATEGORIES[column])
        reasons.flag(unknown, lambda i: f"{column}={text[i]!r} is not an allowed category")
    return text.where(~missing)


def _coerce(column: str, dtype: pa.DataType, source: pd.Series, reasons: _Reasons) -> pd.Series:
    """One column in its table type, invalid values as nulls, each problem flagged."""
    # Plain objects: sources hand over Arrow-backed or numpy dtypes, and masks over
    # nullable dtypes carry NA instead of False.
    values = pd.Series(source.to_numpy(dtype=object, na_value=None))
    # Text sources (CSV) hand every column over as strings, where blank means missing;
    # typed sources (Parquet, Snowflake) cannot hold a blank number, so skip the work.
    as_text = pa.types.is_string(dtype) or not pd.api.types.is_numeric_dtype(source)
    is_time = pd.api.types.is_datetime64_any_dtype(source)
    text = values.astype("string").str.strip() if as_text and not is_time else None
    missing = _blank(values, text)
    reasons.flag(missing, f"{column} is null")
    if pa.types.is_integer(dtype):
        return _coerce_int(column, values, missing, reasons)
    if pa.types.is_timestamp(dtype):
        return _coerce_timestamp(column, values, missing, reasons)
    return _coerce_text(column, text, missing, reasons)


def annotate_batch(batch: pd.DataFrame, spec: TableSpec) -> pa.Table:
    """Coerce a batch to the table's types and give every bad row the reasons it is bad.

    Invalid values become nulls in the typed columns; the row's original values are kept as
    JSON in `_raw` so the rejects file shows exactly what the source held.
    """
    reasons = _Reasons(len(batch))
    frame = pd.DataFrame(
        {
            column: _coerce(column, dtype, batch[column], reasons)
            for column, dtype in spec.columns.items()
        }
    )
    reason = reasons.joined()
    raw = pd.Series([None] * len(batch), dtype="object")
    bad = reason.notna().to_numpy()
    if bad.any():
        original = batch.reset_index(drop=True).loc[bad]
        raw[bad] = [json.dumps(row, default=str) for row in original.to_dict("records")]
    frame[REASON] = reason
    frame[RAW] = raw
    return pa.Table.from_pandas(frame, schema=output_schema(spec), preserve_index=False)


def flag_duplicates(df: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Reject every valid row whose unique key occurs more than once: which copy is right is
    unknowable, so none is trusted."""
    key = list(spec.unique_key)
    valid = df[REASON].isna()
    counts = df.loc[valid].groupby(key, dropna=False)[key[0]].transform("size")
    dup_index = counts.index[counts > 1]
    if len(dup_index):
        df = df.copy()
        rows = df.loc[dup_index, key]
        df.loc[dup_index, REASON] = [
            "duplicate key " + ", ".join(f"{k}={v}" for k, v in zip(key, vals, strict=True))
            for vals in rows.itertuples(index=False)
        ]
        originals = df.loc[dup_index, list(spec.columns)]
        df.loc[dup_index, RAW] = [json.dumps(r, default=str) for r in originals.to_dict("records")]
    return df


def split_valid(df: pd.DataFrame, spec: TableSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid rows typed and sorted by key, rejects with reason and original values)."""
    bad = df[REASON].notna()
    valid_df = (
        df.loc[~bad, list(spec.columns)]
        .sort_values(list(spec.unique_key), kind="mergesort")
        .reset_index(drop=True)
    )
    rejects = df.loc[bad, [REASON, RAW]].reset_index(drop=True)
    originals = pd.DataFrame([json.loads(r) for r in rejects[RAW]], dtype="object")
    rejects_df = pd.concat(
        [rejects[[REASON]].rename(columns={REASON: "reason"}), originals], axis=1
    )
    return valid_df, rejects_df
