"""The adverse-action reason catalogue: a stable code and the applicant-facing phrasing of every
raw column a reason may name, built from the dataset spec's `reasons` section."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from app.dataset import Dataset
from app.dataset.spec import ReasonText
from app.dataset.wording import compile_template


@dataclass(frozen=True)
class Reason:
    """The reason code of one raw column and how to phrase it for a given applicant value.

    A categorical reason has a text per schema category; a numeric one formats the value.
    Missing values (and categories the schema does not know, which the encoder also treats as
    missing) get "No information on <subject>".
    """

    code: str
    subject: str
    texts: Mapping[str, str] = field(default_factory=dict)
    number: Callable[[float], str] | None = None

    @property
    def missing_text(self) -> str:
        return f"No information on {self.subject}"

    def describe(self, value: object) -> str:
        if self.number is None:
            return self.texts.get(value, self.missing_text)  # type: ignore[call-overload]
        number = as_float(value)
        if number != number or number in (np.inf, -np.inf):
            return self.missing_text
        return self.number(number)

    def describe_many(self, values: np.ndarray) -> np.ndarray:
        """describe() over an array, each distinct number phrased once (no pandas)."""
        if self.number is None:
            return np.array([self.describe(v) for v in values], dtype="object")
        out = np.empty(len(values), dtype="object")
        texts: dict[float, str] = {}
        for i, value in enumerate(values):
            number = as_float(value)
            text = texts.get(number)
            if text is None:
                text = texts[number] = self.describe(number)
            out[i] = text
        return out


def as_float(value: object) -> float:
    """A number as float, anything else (None, text that is not a number) as NaN."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def numeric_wording(reason: ReasonText, currency: str) -> Callable[[float], str]:
    """A numeric column's phrasing: `text`, replaced by the `text_from` entry with the largest
    threshold at or below the value (e.g. "high share" from level 3 of a 1-4 scale)."""
    base = compile_template(reason.text or "{value}", currency)
    steps = sorted((low, compile_template(t, currency)) for low, t in reason.text_from.items())
    if not steps:
        return base

    def phrase(value: float) -> str:
        chosen = base
        for low, text in steps:
            if value >= low:
                chosen = text
        return chosen(value)

    return phrase


@lru_cache(maxsize=32)
def catalogue(dataset: Dataset) -> Mapping[str, Reason]:
    """Column -> Reason for every column the spec gives a code (checked at load: every citable
    model column has one, codes are unique, retired codes are not reused).

    Codes are part of the adverse-action record and of downstream reporting: a spec must never
    renumber or reuse one (`reasons.retired` keeps a dropped column's code reserved), and
    protected columns have no code, because they may never be given as a reason.
    """
    spec = dataset.spec
    out: dict[str, Reason] = {}
    for column, reason in spec.reasons.codes.items():
        declared = spec.columns.get(column)
        if declared is not None and declared.type == "category":
            texts = declared.categories
            out[column] = Reason(
                reason.code,
                reason.subject,
                dict(texts) if isinstance(texts, dict) else {c: c for c in texts or ()},
            )
        else:
            out[column] = Reason(
                reason.code, reason.subject, number=numeric_wording(reason, spec.currency)
            )
    return MappingProxyType(out)
