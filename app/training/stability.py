"""Population and characteristic stability (PSI of the score, CSI per characteristic) on bins
frozen from a model version's training reference: the figures credit teams report monthly.

The bins are fixed once, from the reference alone (score and numeric columns: its deciles;
categories: as they are), so every later window is compared on the same grid. Evidently's
PSI re-bins the combined reference and window data on each run (and ignores `n_bins`,
evidentlyai/evidently#1400), so its figures are not comparable month to month.

PSI = sum over bins of (actual - expected) * ln(actual / expected), shares of each side. A bin
empty on one side would make it infinite: empty shares count as EMPTY_SHARE. Missing values have
a bin of their own, and so do categories the reference never had, so a column that starts
arriving empty, or with a new category, shows as a shift instead of vanishing.
Cost: one pass over each column of the window (a binary search per numeric value).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

DECILES = 10
# The share an empty bin counts as (0.01%): finite, and large against it any real share is.
EMPTY_SHARE = 1e-4
# The bands credit teams read PSI by: below 0.10 stable, 0.10-0.25 a shift to watch, 0.25 and
# above a shift to act on.
WATCH, ACT = 0.10, 0.25
MISSING, OTHER = "(missing)", "(other)"

Band = Literal["stable", "watch", "act"]


@dataclass(frozen=True)
class Bins:
    """One column's frozen grid and the reference's share in each bin.

    Numeric: `edges` are the interior cut points; bin i holds values <= edges[i] (and above
    edges[i-1]), the last bin values above the last edge. Categorical: one bin per category
    of `categories`, then OTHER. Both end with the MISSING bin."""

    column: str
    kind: Literal["numeric", "categorical"]
    edges: tuple[float, ...]
    categories: tuple[str, ...]
    expected: tuple[float, ...]

    @property
    def labels(self) -> list[str]:
        if self.kind == "categorical":
            return [*self.categories, OTHER, MISSING]
        bounds = ["-inf", *(f"{e:g}" for e in self.edges), "inf"]
        return [f"({lo}, {hi}]" for lo, hi in itertools.pairwise(bounds)] + [MISSING]

    def counts(self, values: pd.Series, weights: np.ndarray | None = None) -> np.ndarray:
        """How many of `values` (weighted) fall in each bin."""
        index = self.index(values)
        size = len(self.expected)
        return np.bincount(index, weights=weights, minlength=size)[:size].astype("float64")

    def index(self, values: pd.Series) -> np.ndarray:
        """Each value's bin."""
        missing = values.isna().to_numpy()
        if self.kind == "numeric":
            numbers = pd.to_numeric(values, errors="coerce").to_numpy("float64", na_value=np.nan)
            missing |= np.isnan(numbers)
            index = np.searchsorted(np.asarray(self.edges, "float64"), numbers, side="left")
        else:
            # -1 for a category the reference never had (and for missing, overridden below).
            codes = pd.Categorical(values.astype("string"), categories=list(self.categories))
            index = np.where(codes.codes < 0, len(self.categories), codes.codes)
        return np.where(missing, len(self.expected) - 1, index)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "edges": list(self.edges),
            "categories": list(self.categories),
            "expected": list(self.expected),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bins:
        return cls(
            str(data["column"]),
            data["kind"],
            tuple(float(e) for e in data["edges"]),
            tuple(str(c) for c in data["categories"]),
            tuple(float(s) for s in data["expected"]),
        )


def numeric_bins(column: str, values: pd.Series, quantiles: int = DECILES) -> Bins:
    """The reference's `quantiles`-iles as cut points, each one of its values (ties merged: a
    column of few distinct values gets a bin per value), and its share in each."""
    numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy("float64")
    edges: tuple[float, ...] = ()
    if len(numbers):
        levels = np.arange(1, quantiles) / quantiles
        cuts = np.unique(np.quantile(numbers, levels, method="inverted_cdf"))
        # The top value as a cut would leave an always-empty last bin.
        edges = tuple(float(e) for e in cuts[cuts < numbers.max()])
    empty = Bins(column, "numeric", edges, (), (0.0,) * (len(edges) + 2))
    return _with_shares(empty, values)


def categorical_bins(column: str, values: pd.Series) -> Bins:
    """One bin per category the reference holds (sorted), OTHER for any new one, MISSING."""
    categories = tuple(sorted({str(v) for v in values.dropna()}))
    empty = Bins(column, "categorical", (), categories, (0.0,) * (len(categories) + 2))
    return _with_shares(empty, values)


def _with_shares(bins: Bins, values: pd.Series) -> Bins:
    counts = bins.counts(values)
    total = counts.sum()
    shares = counts / total if total else counts
    return Bins(bins.column, bins.kind, bins.edges, bins.categories, tuple(shares.tolist()))


def frozen_bins(
    reference: pd.DataFrame, score: str, numeric: list[str], categorical: list[str]
) -> dict[str, Bins]:
    """The score's deciles and each characteristic's bins, from the training reference."""
    bins = {score: numeric_bins(score, reference[score])}
    bins |= {c: numeric_bins(c, reference[c]) for c in numeric}
    return bins | {c: categorical_bins(c, reference[c]) for c in categorical}


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors (empty shares as EMPTY_SHARE)."""
    e = np.where(np.asarray(expected, "float64") > 0, expected, EMPTY_SHARE)
    a = np.where(np.asarray(actual, "float64") > 0, actual, EMPTY_SHARE)
    return float(np.sum((a - e) * np.log(a / e)))


def band(value: float) -> Band:
    return "stable" if value < WATCH else "watch" if value < ACT else "act"


def stability(
    bins: Mapping[str, Bins], window: pd.DataFrame, weights: np.ndarray | None = None
) -> dict[str, dict[str, Any]]:
    """PSI (score) or CSI (characteristic) of `window` on each frozen grid, with its band and
    the shares per bin; `weights`: the traffic each row stands for (sampled windows)."""
    out = {}
    for column, grid in bins.items():
        if column not in window.columns:
            continue
        counts = grid.counts(window[column], weights)
        total = counts.sum()
        actual = counts / total if total else counts
        value = psi(np.asarray(grid.expected), actual)
        out[column] = {
            "psi": value,
            "band": band(value),
            "bins": grid.labels,
            "expected": list(grid.expected),
            "actual": actual.tolist(),
        }
    return out
