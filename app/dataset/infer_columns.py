"""Per-column guesses for a drafted spec: the type, whether it is nullable, unknown-value codes
(sentinels), a plausible range, category codes, money units and a reason's wording, each
noted for review. Part of drafting (app.dataset.infer)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from app.dataset.infer_names import name_words, subject_of
from app.dataset.infer_yaml import Draft, Flow

# A text column with at most this many distinct values (and each seen at least twice on
# average) is a `category`; more are ids or free text (`string`).
CATEGORY_MAX = 50

# Name words hinting at an attribute law protects from credit decisions in many places.
_PROTECTED_WORDS = frozenset(
    {
        "age",
        "sex",
        "gender",
        "race",
        "ethnic",
        "ethnicity",
        "religion",
        "nationality",
        "foreign",
        "citizenship",
        "marital",
        "disability",
        "pregnancy",
    }
)
_MONEY_WORDS = frozenset(
    {"income", "salary", "wage", "amount", "balance", "payment", "price", "revenue", "debt", "rent"}
)
_RATIO_WORDS = frozenset(
    {"ratio", "utilization", "utilisation", "rate", "share", "percent", "pct", "fraction"}
)


# --- values ---------------------------------------------------------------------------


def present(values: pd.Series) -> pd.Series:
    """The non-missing values; text stripped, and blank text counts as missing (as
    app.data.validation reads it)."""
    values = values.dropna()
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        text = values.map(lambda v: v.strip() if isinstance(v, str) else v)
        return text[text.map(lambda v: not (isinstance(v, str) and v == ""))]
    return values


def _numbers(values: pd.Series) -> pd.Series | None:
    """The values as float64 when every one is a number (booleans are not), else None."""
    if pd.api.types.is_bool_dtype(values):
        return None
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    if any(isinstance(v, bool | np.bool_) for v in values):
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.astype("float64") if numbers.notna().all() else None


def _is_bool(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values):
        return True
    return len(values) > 0 and all(isinstance(v, bool | np.bool_) for v in values)


def _is_timestamp(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    if not len(values) or not all(isinstance(v, str) for v in values):
        return False
    # Dates need digits and a date or time separator: "12" or "yes" must not parse as times.
    if not values.str.contains(r"\d").all() or not values.str.contains(r"[-/:T]").all():
        return False
    stamps = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    return bool(stamps.notna().all())


def infer_type(values: pd.Series) -> str:
    """`int`, `float`, `bool`, `category`, `string` or `timestamp` for one column."""
    seen = present(values)
    if _is_bool(seen):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "timestamp"
    numbers = _numbers(seen)
    if numbers is not None:
        finite = numbers[np.isfinite(numbers)]
        # Integer columns with a gap read as float (NaN has no integer): whole numbers are int,
        # as long as an int64 holds them.
        whole = len(finite) and (finite == np.floor(finite)).all()
        if whole and finite.abs().max() < 2.0**63:
            return "int"
        return "float"
    if _is_timestamp(seen):
        return "timestamp"
    distinct = seen.astype(str).nunique()
    if distinct <= CATEGORY_MAX and distinct * 2 <= len(seen):
        return "category"
    return "string"


def _sentinel_like(value: float) -> bool:
    """96, 98, 99, 999, 9999 or -1, -9, -99: the codes data entry uses for "unknown"."""
    if value != math.floor(value):
        return False
    if value < 0:
        return bool(re.fullmatch(r"1|9+", str(int(-value))))
    return bool(re.fullmatch(r"9+[0-9]?", str(int(value)))) and value >= 90


def sentinels(numbers: pd.Series) -> list[int]:
    """Codes of an integer column that sit far outside the rest of its values: proposed as
    `missing_codes`. Only sentinel-looking values count, so a large but real value (an income
    of 9,999, an age of 99) is never proposed."""
    finite = numbers[np.isfinite(numbers)]
    candidates = sorted(v for v in finite.unique() if _sentinel_like(float(v)))
    if not candidates:
        return []
    rest = finite[~finite.isin(candidates)]
    if rest.empty:
        return []
    low, high = float(rest.min()), float(rest.max())
    found = []
    for value in candidates:
        far_above = value > 0 and value >= 2 * max(high, 0) and value >= high + 10
        below_counts = value < 0 and low >= 0
        if far_above or below_counts:
            found.append(int(value))
    return found


def _step(width: float) -> float:
    return 10.0 ** math.floor(math.log10(width)) if width > 0 else 1.0


def widened_range(low: float, high: float, integer: bool) -> tuple[int | float, int | float]:
    """A plausible range around the values seen: a tenth of their spread wider on each side,
    rounded outward, never below 0 for values that never were."""
    spread = high - low
    pad = spread / 10 if spread > 0 else max(abs(high) / 10, 1.0)
    step = max(_step(pad), 1.0) if integer else _step(pad)
    lo = math.floor((low - pad) / step) * step
    hi = math.ceil((high + pad) / step) * step
    if low >= 0:
        lo = max(lo, 0.0)
    if integer:
        return int(lo), int(hi)
    places = max(0, -math.floor(math.log10(step)))
    return round(lo, places), round(hi, places)


def plain_value(value: Any) -> Any:
    """A numpy scalar as the plain Python value YAML can write."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# --- one column of the draft ----------------------------------------------------------


@dataclass
class Profile:
    """What drafting learned of one source column."""

    source: str
    name: str
    type: str
    rows: int
    missing: int
    values: pd.Series  # present values
    numbers: pd.Series | None = None
    codes: list[int] = field(default_factory=list)


def profile_column(frame: pd.DataFrame, source: str, name: str) -> Profile:
    values = frame[source]
    seen = present(values)
    kind = infer_type(values)
    profile = Profile(source, name, kind, len(values), len(values) - len(seen), seen)
    if kind in ("int", "float"):
        profile.numbers = _numbers(seen)
        if kind == "int" and profile.numbers is not None:
            profile.codes = sentinels(profile.numbers)
    return profile


def _shown(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def column_entry(profile: Profile, draft: Draft, currency: str) -> dict[str, Any]:
    """The column's entry under the spec's `columns`, its guesses noted on `draft`."""
    path = ("columns", profile.name)
    column: dict[str, Any] = {"type": profile.type}
    if profile.source != profile.name:
        column["source"] = profile.source
    coded = 0
    if profile.codes:
        assert profile.numbers is not None
        coded = int(profile.numbers.isin(profile.codes).sum())
    if profile.missing or profile.codes:
        column["nullable"] = True
        share = profile.missing / profile.rows if profile.rows else 0.0
        if profile.missing:
            draft.note(
                (*path, "nullable"),
                f"{profile.missing:,} of {profile.rows:,} rows ({share:.1%}) have no value",
            )
    if profile.numbers is not None:
        numbers = profile.numbers[np.isfinite(profile.numbers)]
        rest = numbers[~numbers.isin(profile.codes)]
        if len(rest):
            low, high = float(rest.min()), float(rest.max())
            column["range"] = list(widened_range(low, high, profile.type == "int"))
            draft.note((*path, "range"), f"seen {_shown(low)} to {_shown(high)}")
        infinite = len(profile.numbers) - len(numbers)
        if infinite:
            draft.note((*path, "type"), f"{infinite:,} infinite values: ingest rejects them")
    if profile.codes:
        column["missing_codes"] = profile.codes
        draft.note(
            (*path, "missing_codes"),
            f"{coded:,} rows hold {', '.join(map(str, profile.codes))}, far outside the other "
            f"values: codes for unknown?",
        )
    if profile.type == "category":
        codes = sorted(profile.values.astype(str).unique())
        column["categories"] = {code: code for code in codes}
        draft.note((*path, "categories"), "the texts are the codes: write what an applicant reads")
    if is_money(profile) and currency:
        column["unit"] = "money"
    if name_words(profile.source) & _PROTECTED_WORDS:
        draft.note(
            (*path, "type"),
            "a protected attribute? `protected: true` keeps it out of the model and reasons",
        )
    if profile.type in ("string", "timestamp"):
        draft.note((*path, "type"), "in no table: ids, free text and times are not model inputs")
    return column


def is_money(profile: Profile) -> bool:
    """A number named like an amount of money (`income`, `debt`) and not like a ratio."""
    name = name_words(profile.source)
    return (
        profile.type in ("int", "float") and bool(name & _MONEY_WORDS) and not (name & _RATIO_WORDS)
    )


def _number_format(profile: Profile, currency: str) -> str:
    name = name_words(profile.source)
    numbers = profile.numbers if profile.numbers is not None else pd.Series(dtype="float64")
    numbers = numbers[np.isfinite(numbers) & ~numbers.isin(profile.codes)]
    if is_money(profile):
        return "money" if currency else "amount"
    if profile.type == "int":
        if name & {"month", "months"}:
            return "count:month"
        if name & {"year", "years"}:
            return "count:year"
        return "whole"
    if name & _RATIO_WORDS and len(numbers) and numbers.quantile(0.95) <= 1.5:
        return "percent"
    if len(numbers) and numbers.abs().quantile(0.5) < 100:
        return "decimal:2"
    return "amount"


def reason_entry(profile: Profile, code: str, currency: str) -> Flow:
    """The column's reason under the spec's `reasons.codes`, worded from its name."""
    subject = subject_of(profile.source)
    reason = Flow(code=code, subject=subject)
    if profile.type in ("int", "float"):
        fmt = _number_format(profile, currency)
        reason["text"] = f"{subject[:1].upper()}{subject[1:]}: {{value|{fmt}}}"
    return reason
