"""Named drifts of synthetic rows: the spec's `synthetic.shifts`, applied to a frame of base rows.

Each change moves one column: numbers scaled or compressed toward a value, categories replaced,
or the label rate raised. Changes draw from their own random stream (handed in by
app.data.synthetic), so a shifted frame differs from the unshifted one only in the columns the
shift names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.data.synthetic_fit import Fitted, source_columns
from app.data.synthetic_values import (
    as_numbers,
    as_text,
    is_special,
    is_unknown,
    matches,
    offsets,
    snap,
    typed,
    whole,
)
from app.dataset import Dataset
from app.dataset.spec import Column
from app.dataset.synthetic_spec import (
    ShiftChange,
    ShiftCompress,
    ShiftReplace,
    ShiftScale,
    SyntheticShift,
)
from app.errors import ConfigError


class UnknownShiftError(ConfigError, ValueError):
    """`--shift NAME` names no shift of the dataset's spec (a job prints it as one line)."""


def named_shift(dataset: Dataset, name: str) -> SyntheticShift:
    shifts = dataset.spec.synthetic.shifts
    if name not in shifts:
        valid = ", ".join(sorted(shifts)) or "none (the spec's `synthetic.shifts` is empty)"
        raise UnknownShiftError(
            f"unknown shift {name!r} for dataset {dataset.name}; valid: {valid}"
        )
    return shifts[name]


def shifted_columns(dataset: Dataset, shift: str) -> tuple[str, ...]:
    """The flat-file columns a named shift moves (the label's for a label-rate change)."""
    sources = source_columns(dataset)
    changes = named_shift(dataset, shift).changes
    return tuple(dict.fromkeys(sources[c.column] for c in changes))


def apply_shift(
    df: pd.DataFrame, rng: np.random.Generator, fitted: Fitted, shift: SyntheticShift
) -> None:
    """Apply every change of `shift` to `df` in place, in the spec's order (the order fixes
    which draws each change gets)."""
    for change in shift.changes:
        _apply(df, rng, fitted, change)


def _apply(df: pd.DataFrame, rng: np.random.Generator, fitted: Fitted, change: ShiftChange):
    source = fitted.sources[change.column]
    if change.label_rate is not None:
        _raise_label_rate(df, rng, fitted, change.label_rate)
    elif change.replace is not None:
        _replace(df, rng, source, change.replace, fitted.spec(source))
    else:
        _move_numbers(df, rng, fitted, source, change.scale or change.compress_toward)


def _move_numbers(
    df: pd.DataFrame,
    rng: np.random.Generator,
    fitted: Fitted,
    source: str,
    how: ShiftScale | ShiftCompress,
) -> None:
    spec = fitted.spec(source)
    original = df[source].to_numpy()
    values = as_numbers(original)
    special = is_special(original, values, spec)
    n = values.size
    if isinstance(how, ShiftScale):
        moved = values * rng.lognormal(np.log(how.factor), how.sigma, n)
        grid = fitted.numbers[source].grid
        if how.grid is not None:
            grid = np.union1d(grid, np.arange(how.grid, spec.range[1] + 1, how.grid))
        if how.snap and grid.size:
            moved = snap(moved, grid)
    else:
        # Compress toward the value rather than subtract a constant, which would pile values
        # up at the lower bound.
        moved = how.value + (values - how.value) * how.factor
        if how.offset:
            moved = moved + offsets(rng, how.offset, n)
    moved = whole(moved, spec)
    # Shifts may leave the real min/max on purpose (that is the drift) but never the range.
    if spec.range is not None:
        moved = np.clip(moved, *spec.range)
    df[source] = typed(original, np.where(special, values, moved), special, spec)


def _replace(
    df: pd.DataFrame, rng: np.random.Generator, source: str, how: ShiftReplace, spec: Column
) -> None:
    values = df[source].to_numpy(dtype=object).copy()
    choices, weights = list(how.values), list(how.values.values())
    hit = np.flatnonzero(rng.random(values.size) < how.probability)
    picks = rng.choice(len(choices), size=hit.size, p=np.asarray(weights) / sum(weights))
    # Unknown values stay unknown (drawn for all the same, so the stream does not depend on them).
    known = ~is_unknown(values[hit], spec)
    values[hit[known]] = np.asarray(choices, dtype=object)[picks[known]]
    # A typed column keeps its type (the spec check allows only values of the column's type).
    kind = df[source].dtype.kind
    if kind == "b" and all(isinstance(c, bool) for c in choices):
        values = values.astype(bool)
    elif kind in "iuf" and not any(isinstance(c, bool | str) for c in choices):
        whole_numbers = all(float(c).is_integer() for c in choices)
        values = values.astype(df[source].dtype if kind == "f" or whole_numbers else "float64")
    df[source] = values


def _level_codes(values: np.ndarray, levels: list[str]) -> np.ndarray:
    """Index of each value in `levels` (-1: missing or unknown)."""
    codes = pd.Categorical(values, categories=levels).codes.astype(np.int64)
    # Only values that are not exactly a level pay for the text comparison (a file may hold
    # codes as numbers or padded with blanks).
    odd = (codes < 0) & ~pd.isna(values)
    if odd.any():
        codes[odd] = pd.Categorical(as_text(values[odd]), categories=levels).codes
    return codes


def _raise_label_rate(
    df: pd.DataFrame, rng: np.random.Generator, fitted: Fitted, target: float
) -> None:
    # A downturn: the same applicants, but more of them default, and mostly those who already
    # looked risky. Negative rows are relabelled positive, drawn without replacement with weight
    # equal to their naive-Bayes positive/negative likelihood ratio on the category columns
    # (from the real rows), so risk still ranks defaults; features are untouched.
    label = df[fitted.label].to_numpy()
    negative = np.flatnonzero(matches(label, fitted.dataset.spec.label.negative))
    k = min(negative.size, max(0, round(target * len(df)) - (len(df) - negative.size)))
    log_ratio = np.zeros(negative.size)
    n_pos, n_neg = fitted.positive_rows.size, fitted.negative_rows.size
    for source in fitted.columns:
        spec = fitted.dataset.columns.get(fitted.columns[source])
        if spec is None or spec.type != "category":
            continue
        levels = list(spec.codes)
        real = _level_codes(fitted.raw[source], levels)
        pos = np.bincount(real[fitted.is_positive & (real >= 0)], minlength=len(levels))
        neg = np.bincount(real[~fitted.is_positive & (real >= 0)], minlength=len(levels))
        # Laplace smoothing keeps unseen levels finite.
        ratio = np.log((pos + 1) / (n_pos + len(levels))) - np.log(
            (neg + 1) / (n_neg + len(levels))
        )
        held = _level_codes(df[source].to_numpy()[negative], levels)
        # A missing or unknown value says nothing either way.
        log_ratio += np.where(held >= 0, ratio[held], 0.0)
    # Efraimidis-Spirakis weighted sampling without replacement: top-k of log(u) / w.
    weight = np.exp(log_ratio - log_ratio.max()) if negative.size else log_ratio
    keys = np.log(rng.random(negative.size)) / np.maximum(weight, 1e-300)
    chosen = negative[np.argpartition(-keys, k - 1)[:k]] if k > 0 else negative[:0]
    label = label.copy()
    label[chosen] = fitted.positive
    df[fitted.label] = label
