"""Summaries of measured samples: percentiles, medians, growth, trends, per-minute buckets."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

import numpy as np

LATENCY_KEYS = ("p50", "p95", "p99")


def percentiles(values: Sequence[float], keys: Sequence[str] = LATENCY_KEYS) -> dict[str, float]:
    """Each of `keys` of `values`: "pN" (numpy's linear interpolation), "mean" or "max"; NaN
    for no values."""
    array = np.asarray(values, dtype="float64")

    def one(key: str) -> float:
        if array.size == 0:
            return math.nan
        if key == "mean":
            return float(array.mean())
        if key == "max":
            return float(array.max())
        return float(np.percentile(array, float(key.removeprefix("p"))))

    return {key: one(key) for key in keys}


def median(values: Iterable[float]) -> float:
    """The median, NaN for no values."""
    values = list(values)
    return float(statistics.median(values)) if values else math.nan


def medians(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Key by key medians of dicts with the same keys (one dict per repeat)."""
    return {key: median(row[key] for row in rows) for key in rows[0]}


def growth(start: float, end: float) -> float:
    """(end - start) / start; inf when something grew from nothing, 0 when nothing stayed."""
    if start:
        return (end - start) / start
    return math.inf if end else 0.0


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute; NaN under 3 points."""
    if len(points) < 3:
        return math.nan
    seconds, values = np.asarray(points, dtype="float64").T
    return float(np.polyfit(seconds / 60, values, 1)[0])


def minutes(times: Sequence[float], seconds: float) -> list[tuple[float, float, list[int]]]:
    """(from s, to s, indexes of `times` in [from, to)) for each minute of `seconds`, the last
    one possibly shorter."""
    buckets = []
    for minute in range(math.ceil(seconds / 60)):
        lo, hi = minute * 60, min((minute + 1) * 60, seconds)
        buckets.append((lo, hi, [i for i, t in enumerate(times) if lo <= t < hi]))
    return buckets
