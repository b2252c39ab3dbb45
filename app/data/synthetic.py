"""Scale a dataset's flat file to any number of synthetic rows, with optional drift.

Method: a class-conditional smoothed bootstrap, driven by the spec's `synthetic` section. Each
synthetic row first gets its class (an exact count, so the label rate matches the real file),
then copies a real row of that class, then is perturbed slightly:

* each column under `synthetic.jitter` (continuous numerics: amounts, terms, ages): multiplied
  by lognormal noise (`sigma`) or shifted by a whole number up to `offset`, then, with `snap`,
  moved to the nearest value the real file holds (banks lend for 6/12/24/36... months, not 23);
* every other column (categories, bools, small ordinals, counts): with probability
  `swap_probability` replaced by the value of another random real row of the same class (a
  draw from that class's marginal), so it keeps its real levels.

Jittered numbers are clipped to the spec's range and to the real min/max, and every other
value is one a real row holds, so the output stays inside the spec. Missing values, missing
codes (sentinels such as 98) and out-of-range values the spec keeps (`out_of_range: missing`
or `clip`) are no numbers to move: they are copied as they are, never jittered nor clipped, so
ingest treats them as it treats the real file's.

Why this and not a parametric model: copying whole rows keeps every interaction between the
features and the label (which a model trained on the synthetic data must learn), while the
noise stops the output from being the real rows repeated a thousand times. The noise is kept
small because a model trained on synthetic rows must score real rows about as well as one
trained on the real rows (see ``app.data.fidelity``).

Named drifts (`synthetic.shifts`) are applied after the base rows are drawn, from their own
random stream, so a shifted frame differs from the unshifted one (same seed) only in the
columns the shift names.

The fit of the real rows lives in app.data.synthetic_fit, the named shifts in
app.data.synthetic_shifts and the per-column value helpers both use in
app.data.synthetic_values; this module draws the base rows and re-exports the public API.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.data.synthetic_fit import Fitted, fit, source_columns
from app.data.synthetic_shifts import (
    UnknownShiftError,
    apply_shift,
    named_shift,
    shifted_columns,
)
from app.data.synthetic_values import offsets, snap, typed, whole
from app.dataset import Dataset
from app.dataset.synthetic_spec import SyntheticJitter

# Callers import these from here, as before the generator was split.
__all__ = ["UnknownShiftError", "generate_raw", "shifted_columns", "source_columns"]


def _same_class_rows(rng: np.random.Generator, fitted: Fitted, positive: np.ndarray) -> np.ndarray:
    """One random real row index per entry, from the class each entry is in."""
    u = rng.random(positive.size)
    pos = fitted.positive_rows[(u * fitted.positive_rows.size).astype(np.int64)]
    neg = fitted.negative_rows[(u * fitted.negative_rows.size).astype(np.int64)]
    return np.where(positive, pos, neg)


def _jittered(
    rng: np.random.Generator,
    fitted: Fitted,
    source: str,
    jitter: SyntheticJitter,
    rows: np.ndarray,
) -> np.ndarray:
    numbers = fitted.numbers[source]
    values = numbers.values[rows]
    # Noise for every row (special ones too): the draws do not depend on where the file has
    # gaps, so adding a missing value to the real file moves no other row's noise.
    if jitter.sigma is not None:
        moved = values * rng.lognormal(0.0, jitter.sigma, values.size)
    else:
        moved = values + offsets(rng, jitter.offset, values.size)
    if jitter.snap and numbers.grid.size:
        moved = snap(moved, numbers.grid)
    moved = np.clip(whole(moved, fitted.spec(source)), numbers.low, numbers.high)
    special = numbers.special[rows]
    moved = np.where(special, values, moved)
    return typed(fitted.raw[source][rows], moved, special, fitted.spec(source))


def generate_raw(
    real_df: pd.DataFrame,
    n: int,
    seed: int,
    shift: str | None = None,
    *,
    dataset: Dataset,
) -> pd.DataFrame:
    """``n`` synthetic rows in the flat-file format, drawn from ``real_df``'s structure.

    Deterministic for the same inputs. The columns are the dataset's flat-file (source)
    columns in ``real_df``'s order (other columns are dropped), each in the type the file has;
    the label holds the file's own raw values. ``shift`` names an entry of the spec's
    ``synthetic.shifts``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    named = named_shift(dataset, shift) if shift is not None else None
    settings = dataset.spec.synthetic
    fitted = fit(real_df, dataset)
    # Two independent streams: the shift never changes what the base rows are.
    base_seq, shift_seq = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(base_seq)

    # Class first, with an exact count, so the label rate equals the real one (to 1/n).
    n_positive = round(n * fitted.is_positive.mean())
    positive = np.zeros(n, dtype=bool)
    positive[:n_positive] = True
    positive = rng.permutation(positive)
    rows = _same_class_rows(rng, fitted, positive)

    jittered = {fitted.sources[c]: j for c, j in settings.jitter.items()}
    features = [s for s in fitted.columns if s != fitted.label]
    # Swapped: categories and bools, then the numerics not jittered (small ordinals, counts);
    # each in flat-file order. The order fixes which draws each column gets: it is the order
    # the generator has always used, so a seed gives the rows it always gave.
    swapped = [s for s in features if s not in fitted.numbers] + [
        s for s in features if s in fitted.numbers and s not in jittered
    ]
    columns: dict[str, np.ndarray] = {}
    for source in swapped:
        out = fitted.raw[source][rows]
        swap = np.flatnonzero(rng.random(n) < settings.swap_probability)
        donors = _same_class_rows(rng, fitted, positive[swap])
        out[swap] = fitted.raw[source][donors]
        columns[source] = out
    for source, jitter in jittered.items():
        columns[source] = _jittered(rng, fitted, source, jitter, rows)
    label = np.where(positive, fitted.positive, fitted.negative)
    columns[fitted.label] = label.astype(fitted.raw[fitted.label].dtype)

    order = [c for c in real_df.columns if c in fitted.columns]
    out_df = pd.DataFrame({c: columns[c] for c in order})
    if named is not None:
        apply_shift(out_df, np.random.default_rng(shift_seq), fitted, named)
    return out_df
