"""Row validation against the dataset spec: types, categories, ranges, missing codes, nulls,
the label's coding and duplicate keys, with a reason per rejected row."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from app.dataset import TableSpec
from app.dataset.spec import Column

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


def _numbers(column: str, values: pd.Series, missing: pd.Series, reasons: _Reasons):
    numbers = pd.to_numeric(values, errors="coerce")
    unparsed = numbers.isna() & ~missing
    reasons.flag(unparsed, lambda i: f"{column}={values[i]!r} is not a number")
    infinite = numbers.notna() & ~np.isfinite(numbers.astype("float64"))
    reasons.flag(infinite, lambda i: f"{column}={values[i]!r} is not a finite number")
    return numbers.astype("float64").where(~infinite)


def _shown(number: float) -> str:
    # Whole numbers in full, but not 1e300's 301 digits in a reject reason.
    whole = float(number).is_integer() and abs(number) < 1e15
    return str(int(number)) if whole else f"{number:g}"


def _apply_range(column: str, numbers: pd.Series, spec: Column | None, reasons: _Reasons):
    if spec is None or spec.range is None:
        return numbers
    low, high = spec.range
    outside = numbers.notna() & ~numbers.between(low, high)
    if spec.out_of_range == "clip":
        return numbers.clip(low, high)
    if spec.out_of_range == "missing":
        return numbers.where(~outside)
    bounds = f"[{_shown(low)}, {_shown(high)}]"
    reasons.flag(outside, lambda i: f"{column}={_shown(numbers[i])} outside {bounds}")
    return numbers


def _coerce_number(
    column: str, values: pd.Series, missing: pd.Series, reasons: _Reasons, spec: Column | None
):
    numbers = _numbers(column, values, missing, reasons)
    if spec is not None and spec.type == "float":
        return _apply_range(column, numbers, spec, reasons)
    fractional = numbers.notna() & (numbers != np.floor(numbers.fillna(0)))
    reasons.flag(fractional, lambda i: f"{column}={values[i]!r} is not an integer")
    numbers = _apply_range(column, numbers.where(~fractional), spec, reasons)
    # Int64 holds less than 2**63: one larger whole number (1e20) would fail the cast below for
    # the whole batch. Flagged here unless the range already rejected it.
    huge = numbers.abs() >= 2.0**63
    low, high = spec.range if spec is not None and spec.range is not None else (-np.inf, np.inf)
    reasons.flag(
        huge & numbers.between(low, high),
        lambda i: f"{column}={values[i]!r} is too large for an integer",
    )
    return numbers.where(~huge).round().astype("Int64")


_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def _coerce_bool(column: str, values: pd.Series, missing: pd.Series, reasons: _Reasons):
    words = values.astype("string").str.strip().str.lower()
    truth = words.isin(_TRUE).fillna(False)
    falsity = words.isin(_FALSE).fillna(False)
    reasons.flag(~missing & ~truth & ~falsity, lambda i: f"{column}={values[i]!r} is not a bool")
    return truth.astype("boolean").where(truth | falsity)


def _coerce_label(column: str, values: pd.Series, missing: pd.Series, label, reasons: _Reasons):
    outcome = pd.Series(pd.NA, index=values.index, dtype="Int64")
    for raw, code in ((label.positive, 1), (label.negative, 0)):
        if isinstance(raw, str):
            hit = values.astype("string").str.strip().eq(raw)
        else:
            hit = pd.to_numeric(values, errors="coerce").eq(float(raw))
        outcome = outcome.mask(hit.fillna(False).to_numpy(), code)
    unknown = outcome.isna() & ~missing
    positive, negative = label.positive, label.negative
    reasons.flag(
        unknown,
        lambda i: f"{column}={values[i]!r} is neither {positive!r} (1) nor {negative!r} (0)",
    )
    return outcome


def _coerce_timestamp(column: str, values: pd.Series, missing: pd.Series, reasons: _Reasons):
    stamps = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    reasons.flag(stamps.isna() & ~missing, lambda i: f"{column}={values[i]!r} is not a timestamp")
    return stamps


def _coerce_text(
    column: str, text: pd.Series, missing: pd.Series, reasons: _Reasons, spec: Column | None
):
    if spec is not None and spec.categories is not None:
        unknown = ~missing & ~text.isin(spec.codes)
        reasons.flag(unknown, lambda i: f"{column}={text[i]!r} is not an allowed category")
    return text.where(~missing)


def _missing_codes(values: pd.Series, spec: Column | None) -> pd.Series:
    """Rows holding a code the spec declares as "unknown" (e.g. 96 and 98 for a count)."""
    if spec is None or not spec.missing_codes:
        return pd.Series(False, index=values.index)
    numbers = pd.to_numeric(values, errors="coerce")
    codes = spec.missing_codes
    numeric = [float(c) for c in codes if isinstance(c, int | float) and not isinstance(c, bool)]
    texts = [str(c) for c in codes]
    return (numbers.isin(numeric) | values.astype("string").str.strip().isin(texts)).fillna(False)


def _typed_timestamps(source: pd.Series, spec: Column | None) -> pd.Series | None:
    """A typed time column in UTC without the trip through Python objects (the largest cost
    of a batch); None when the general path must decide (missing codes, times beyond
    nanoseconds), as the result is the same."""
    if spec is not None and spec.missing_codes:
        return None
    try:
        stamps = pd.to_datetime(source, utc=True).astype("datetime64[ns, UTC]")
    except (OverflowError, ValueError):
        return None
    return stamps.reset_index(drop=True)


def _coerce(name: str, table: TableSpec, source: pd.Series, reasons: _Reasons) -> pd.Series:
    """One column in its table type, invalid values as nulls, each problem flagged."""
    dtype, spec, shown = table.columns[name], table.specs.get(name), table.source_of(name)
    if pa.types.is_timestamp(dtype) and pd.api.types.is_datetime64_any_dtype(source):
        stamps = _typed_timestamps(source, spec)
        if stamps is not None:
            if spec is None or not spec.nullable:
                reasons.flag(stamps.isna().to_numpy(), f"{shown} is null")
            return stamps
    # Plain objects: sources hand over Arrow-backed or numpy dtypes, and masks over
    # nullable dtypes carry NA instead of False.
    values = pd.Series(source.to_numpy(dtype=object, na_value=None))
    # Text sources (CSV) hand every column over as strings, where blank means missing;
    # typed sources (Parquet, Snowflake) cannot hold a blank number, so skip the work.
    as_text = pa.types.is_string(dtype) or not pd.api.types.is_numeric_dtype(source)
    is_time = pd.api.types.is_datetime64_any_dtype(source)
    text = values.astype("string").str.strip() if as_text and not is_time else None
    coded = _missing_codes(values, spec)
    missing = _blank(values, text) | coded
    nullable = spec is not None and spec.nullable
    if not nullable:
        reasons.flag(missing, f"{shown} is null")
    values = values.where(~coded)
    if table.label is not None and name == table.label.name:
        return _coerce_label(shown, values, missing, table.label, reasons)
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        return _coerce_number(shown, values, missing, reasons, spec)
    if pa.types.is_boolean(dtype):
        return _coerce_bool(shown, values, missing, reasons)
    if pa.types.is_timestamp(dtype):
        return _coerce_timestamp(shown, values, missing, reasons)
    return _coerce_text(shown, text, missing, reasons, spec)


def annotate_batch(batch: pd.DataFrame, spec: TableSpec) -> pa.Table:
    """Coerce a batch to the table's types and give every bad row the reasons it is bad.

    Invalid values become nulls in the typed columns; the row's original values are kept as
    JSON in `_raw` so the rejects file shows exactly what the source held.
    """
    reasons = _Reasons(len(batch))
    frame = pd.DataFrame(
        {
            column: _coerce(column, spec, batch[spec.source_of(column)], reasons)
            for column in spec.columns
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


def duplicate_reasons(rows: pd.DataFrame, spec: TableSpec) -> tuple[list[str], list[str]]:
    """(reason, original values as JSON) of each row rejected for its duplicate key."""
    key = list(spec.unique_key)
    reasons = [
        "duplicate key " + ", ".join(f"{k}={v}" for k, v in zip(key, vals, strict=True))
        for vals in rows[key].itertuples(index=False)
    ]
    originals = rows[list(spec.columns)].to_dict("records")
    return reasons, [json.dumps(r, default=str) for r in originals]


def rejects_frame(reasons: list[str], raws: list[str]) -> pd.DataFrame:
    """The rejects file's rows: each reason, then the row's original values by column."""
    originals = pd.DataFrame([json.loads(r) for r in raws], dtype="object")
    reason = pd.DataFrame({"reason": pd.Series(reasons, dtype="object")})
    return pd.concat([reason, originals], axis=1)
