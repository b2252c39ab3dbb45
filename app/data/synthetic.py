"""Scale the German credit file to any number of synthetic applicants, with optional drift.

Method: a class-conditional smoothed bootstrap. Each synthetic row first gets its class
(an exact count, so the label rate matches the real file), then copies a real row of that
class, then is perturbed slightly:

* credit_amount: multiplied by lognormal noise (sigma ``AMOUNT_SIGMA``), rounded;
* duration_in_month: multiplied by lognormal noise, then snapped to the nearest duration the
  real file uses (banks lend for 6/12/24/36... months, not for 23);
* age_in_years: shifted by up to ``AGE_JITTER`` years;
* every categorical and small ordinal column: with probability ``SWAP_PROBABILITY`` replaced
  by the value of another random real row of the same class (a draw from that class's
  marginal).

Numerics are clipped to the schema RANGES and to the real min/max, and categories can only be
values the real rows hold, so the output stays inside the schema.

Why this and not a parametric model: copying whole rows keeps every interaction between the
features and the label (which a model trained on the synthetic data must learn), while the
noise stops the output from being 1000 rows repeated a thousand times. The noise is kept
small because a model trained on synthetic rows must score real rows about as well as one
trained on the real rows (see ``real_vs_synthetic_auc``).

Named drifts (``SHIFTS``) are applied after the base rows are drawn, from their own random
stream, so a shifted frame differs from the unshifted one (same seed) only in the columns
the shift names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.data.schema import CATEGORIES, RANGES, RAW_COLUMNS, RAW_LABEL

GOOD, BAD = "good", "bad"
AGE = "age_in_years"
AMOUNT = "credit_amount"
DURATION = "duration_in_month"
CHECKING = "status_of_existing_checking_account"
HISTORY = "credit_history"
PURPOSE = "purpose"

# Noise levels. Chosen small: larger jitter (sigma 0.3, swap 0.15) blurred the class signal
# enough to cost the synthetic-trained model a few AUC points on real test rows.
AMOUNT_SIGMA = 0.10
DURATION_SIGMA = 0.10
AGE_JITTER = 2
SWAP_PROBABILITY = 0.05

NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in RAW_COLUMNS if c in RANGES)
CATEGORICAL_COLUMNS: tuple[str, ...] = tuple(c for c in RAW_COLUMNS if c in CATEGORIES)
# Jittered as continuous values; the remaining numerics are small ordinals (1-4 scales,
# counts) that are swapped like categories instead, so they keep their real levels.
CONTINUOUS_COLUMNS: tuple[str, ...] = (AMOUNT, DURATION, AGE)
SWAPPED_COLUMNS: tuple[str, ...] = CATEGORICAL_COLUMNS + tuple(
    c for c in NUMERIC_COLUMNS if c not in CONTINUOUS_COLUMNS
)


@dataclass(frozen=True)
class _Fitted:
    """What the generator needs from the real rows, as numpy arrays."""

    values: dict[str, np.ndarray]  # column -> real values (object for categories, int64 else)
    is_bad: np.ndarray  # bool per real row
    bad_rows: np.ndarray  # indices of real bad rows
    good_rows: np.ndarray
    bounds: dict[str, tuple[int, int]]  # numeric column -> (low, high) to clip to
    durations: np.ndarray  # sorted distinct real durations


@dataclass(frozen=True)
class Shift:
    """A named drift: which raw columns it moves and how."""

    description: str
    columns: tuple[str, ...]
    apply: Callable[[pd.DataFrame, np.random.Generator, _Fitted], None]  # edits in place


def _check_real(real_df: pd.DataFrame) -> None:
    missing = [c for c in RAW_COLUMNS if c not in real_df.columns]
    if missing:
        raise ValueError(f"real data lacks columns: {', '.join(missing)}")
    for col in CATEGORICAL_COLUMNS:
        bad = set(real_df[col].dropna().unique()) - set(CATEGORIES[col])
        if bad or real_df[col].isna().any():
            raise ValueError(f"real column {col} has values outside the schema: {sorted(bad)}")
    for col in NUMERIC_COLUMNS:
        low, high = RANGES[col]
        values = pd.to_numeric(real_df[col], errors="coerce")
        if values.isna().any() or (values < low).any() or (values > high).any():
            raise ValueError(f"real column {col} has values outside [{low}, {high}]")
    labels = set(real_df[RAW_LABEL].unique())
    if not labels <= {GOOD, BAD} or len(labels) < 2:
        raise ValueError(f"real {RAW_LABEL} must hold both 'good' and 'bad', got {labels}")


def _fit(real_df: pd.DataFrame) -> _Fitted:
    _check_real(real_df)
    values: dict[str, np.ndarray] = {c: real_df[c].to_numpy(dtype=object) for c in SWAPPED_COLUMNS}
    bounds: dict[str, tuple[int, int]] = {}
    for col in NUMERIC_COLUMNS:
        column = real_df[col].to_numpy(dtype=np.int64)
        values[col] = column
        low, high = RANGES[col]
        bounds[col] = (max(low, int(column.min())), min(high, int(column.max())))
    is_bad = real_df[RAW_LABEL].to_numpy() == BAD
    return _Fitted(
        values=values,
        is_bad=is_bad,
        bad_rows=np.flatnonzero(is_bad),
        good_rows=np.flatnonzero(~is_bad),
        bounds=bounds,
        durations=np.unique(values[DURATION]),
    )


def _same_class_rows(rng: np.random.Generator, fitted: _Fitted, is_bad: np.ndarray) -> np.ndarray:
    """One random real row index per entry, from the class each entry is in."""
    u = rng.random(is_bad.size)
    bad = fitted.bad_rows[(u * fitted.bad_rows.size).astype(np.int64)]
    good = fitted.good_rows[(u * fitted.good_rows.size).astype(np.int64)]
    return np.where(is_bad, bad, good)


def _snap(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each value replaced by the nearest grid value (grid sorted ascending)."""
    if grid.size == 1:
        return np.full(values.shape, grid[0])
    right = np.clip(np.searchsorted(grid, values), 1, grid.size - 1)
    left = right - 1
    nearer_left = np.abs(values - grid[left]) <= np.abs(grid[right] - values)
    return np.where(nearer_left, grid[left], grid[right])


def generate_raw(
    real_df: pd.DataFrame, n: int, seed: int, shift: str | None = None
) -> pd.DataFrame:
    """``n`` synthetic applicants in the raw CSV format, drawn from ``real_df``'s structure.

    Deterministic for the same inputs. The columns are the raw columns in ``real_df``'s order
    (other columns are dropped); categories are the schema strings, numerics are int64 and
    the label is ``creditability`` good/bad. ``shift`` names an entry of ``SHIFTS``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if shift is not None and shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}; valid shifts: {', '.join(sorted(SHIFTS))}")
    fitted = _fit(real_df)
    # Two independent streams: the shift never changes what the base rows are.
    base_seq, shift_seq = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(base_seq)

    # Class first, with an exact count, so the label rate equals the real one (to 1/n).
    n_bad = round(n * fitted.is_bad.mean())
    is_bad = np.zeros(n, dtype=bool)
    is_bad[:n_bad] = True
    is_bad = rng.permutation(is_bad)
    rows = _same_class_rows(rng, fitted, is_bad)

    columns: dict[str, np.ndarray] = {}
    for col in SWAPPED_COLUMNS:
        out = fitted.values[col][rows]
        swap = np.flatnonzero(rng.random(n) < SWAP_PROBABILITY)
        donors = _same_class_rows(rng, fitted, is_bad[swap])
        out[swap] = fitted.values[col][donors]
        columns[col] = out

    amount = fitted.values[AMOUNT][rows] * rng.lognormal(0.0, AMOUNT_SIGMA, n)
    columns[AMOUNT] = np.rint(amount).astype(np.int64)
    duration = fitted.values[DURATION][rows] * rng.lognormal(0.0, DURATION_SIGMA, n)
    columns[DURATION] = _snap(duration, fitted.durations).astype(np.int64)
    age_noise = rng.integers(-AGE_JITTER, AGE_JITTER + 1, n)
    columns[AGE] = fitted.values[AGE][rows] + age_noise
    for col in NUMERIC_COLUMNS:
        low, high = fitted.bounds[col]
        columns[col] = np.clip(columns[col], low, high).astype(np.int64)
    columns[RAW_LABEL] = np.where(is_bad, BAD, GOOD).astype(object)

    order = [c for c in real_df.columns if c in RAW_COLUMNS]
    out_df = pd.DataFrame({c: columns[c] for c in order})
    if shift is not None:
        SHIFTS[shift].apply(out_df, np.random.default_rng(shift_seq), fitted)
    return out_df


# --- named shifts ----------------------------------------------------------------------------


def _clip(col: str, values: np.ndarray) -> np.ndarray:
    # Shifts may leave the real min/max on purpose (that is the drift) but never the schema.
    low, high = RANGES[col]
    return np.clip(values, low, high).astype(np.int64)


def _younger(df: pd.DataFrame, rng: np.random.Generator, fitted: _Fitted) -> None:
    # Compress ages toward 18 rather than subtracting a constant, which would pile the young
    # applicants up at the lower bound. Real mean ~35.5 -> ~27.
    age = df[AGE].to_numpy()
    younger = RANGES[AGE][0] + (age - RANGES[AGE][0]) * 0.5 + rng.integers(-1, 2, age.size)
    df[AGE] = _clip(AGE, np.rint(younger))


def _larger_loans(df: pd.DataFrame, rng: np.random.Generator, fitted: _Fitted) -> None:
    amount = df[AMOUNT].to_numpy() * rng.lognormal(np.log(1.6), 0.1, len(df))
    df[AMOUNT] = _clip(AMOUNT, np.rint(amount))
    # Longer terms stay on plausible months: the real ones plus every 6 months up to the cap.
    grid = np.union1d(fitted.durations, np.arange(6, RANGES[DURATION][1] + 1, 6))
    duration = df[DURATION].to_numpy() * rng.lognormal(np.log(1.4), 0.05, len(df))
    df[DURATION] = _clip(DURATION, _snap(duration, grid))


def _replace(
    df: pd.DataFrame,
    rng: np.random.Generator,
    col: str,
    probability: float,
    choices: tuple[str, ...],
    weights: tuple[float, ...],
) -> None:
    values = df[col].to_numpy(dtype=object).copy()
    hit = np.flatnonzero(rng.random(values.size) < probability)
    picks = rng.choice(len(choices), size=hit.size, p=np.asarray(weights) / sum(weights))
    values[hit] = np.asarray(choices, dtype=object)[picks]
    df[col] = values


def _checking_deterioration(df: pd.DataFrame, rng: np.random.Generator, fitted: _Fitted) -> None:
    # Overdrawn accounts and past payment delays become far more common (real: 27% / 9%).
    _replace(df, rng, CHECKING, 0.35, ("... < 0 DM",), (1.0,))
    _replace(df, rng, HISTORY, 0.30, ("delay in paying off in the past",), (1.0,))


def _purpose_mix(df: pd.DataFrame, rng: np.random.Generator, fitted: _Fitted) -> None:
    # Half the applications become new-car or business loans (real: 23% / 10%).
    _replace(df, rng, PURPOSE, 0.5, ("car (new)", "business"), (0.6, 0.4))


HIGHER_DEFAULT_RATE = 0.45


def _higher_default_rate(df: pd.DataFrame, rng: np.random.Generator, fitted: _Fitted) -> None:
    # A downturn: the same applicants, but more of them default, and mostly those who already
    # looked risky. Good rows are relabelled bad, drawn without replacement with weight equal
    # to their naive-Bayes bad/good likelihood ratio on the categorical columns (from the real
    # rows), so risk still ranks defaults; features are untouched (pure label / concept drift).
    label = df[RAW_LABEL].to_numpy()
    good = np.flatnonzero(label == GOOD)
    k = min(good.size, max(0, round(HIGHER_DEFAULT_RATE * len(df)) - (len(df) - good.size)))
    log_ratio = np.zeros(good.size)
    for col in CATEGORICAL_COLUMNS:
        real = pd.Series(fitted.values[col])
        bad_share = real[fitted.is_bad].value_counts()
        good_share = real[~fitted.is_bad].value_counts()
        levels = pd.Index(CATEGORIES[col])
        # Laplace smoothing keeps unseen levels finite.
        ratio = np.log(
            (bad_share.reindex(levels, fill_value=0) + 1) / (fitted.bad_rows.size + len(levels))
        ) - np.log(
            (good_share.reindex(levels, fill_value=0) + 1) / (fitted.good_rows.size + len(levels))
        )
        log_ratio += ratio.reindex(df[col].to_numpy()[good]).to_numpy()
    # Efraimidis-Spirakis weighted sampling without replacement: top-k of log(u) / w.
    weight = np.exp(log_ratio - log_ratio.max())
    keys = np.log(rng.random(good.size)) / np.maximum(weight, 1e-300)
    chosen = good[np.argpartition(-keys, k - 1)[:k]] if k > 0 else good[:0]
    label = label.copy()
    label[chosen] = BAD
    df[RAW_LABEL] = label


SHIFTS: dict[str, Shift] = {
    "younger_applicants": Shift(
        "ages compressed toward 18 (mean ~8 years lower)", (AGE,), _younger
    ),
    "larger_loans": Shift(
        "credit amounts ~1.6x and durations ~1.4x longer", (AMOUNT, DURATION), _larger_loans
    ),
    "checking_deterioration": Shift(
        "more '... < 0 DM' checking accounts and past payment delays",
        (CHECKING, HISTORY),
        _checking_deterioration,
    ),
    "purpose_mix": Shift("half of all loans for a new car or business", (PURPOSE,), _purpose_mix),
    "higher_default_rate": Shift(
        f"default rate up to {HIGHER_DEFAULT_RATE:.0%}, risky-looking applicants first",
        (RAW_LABEL,),
        _higher_default_rate,
    ),
}
