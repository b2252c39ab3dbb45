"""Counter-offers for declines: the best terms a model would approve, from one model pass."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.features.transforms import application_feature_values
from app.training.compiled import CompiledModel
from app.training.model import sigmoid

# Offered only when this far (log-odds) below the cut-off: the grid scores with XGBoost's plain
# margin, the decision path sums per-feature contributions, and the two differ by float
# rounding (measured < 1e-5); an offer must still be approved when the applicant takes it.
MARGIN_GUARD = 1e-3
# Request-time terms a counter-offer changes, and what is derived from them.
TERMS = ("credit_amount", "duration_in_month")
OTHER_INPUTS = ("installment_rate_in_percentage_of_disposable_income", "age_in_years")


@dataclass(frozen=True)
class OfferBounds:
    """Which terms may be offered (the counter_offer_* settings)."""

    min_amount_fraction: float = 0.5  # lowest amount offered, as a share of the request
    amount_step: int = 250  # offered amounts below the request are multiples of this (DM)
    max_amounts: int = 16  # amount levels, the request's included; the step widens to fit
    durations: tuple[int, ...] = (6, 12, 18, 24, 30, 36, 48, 60)  # months, besides the request's

    @classmethod
    def from_settings(cls, settings) -> OfferBounds:
        return cls(
            settings.counter_offer_min_amount_fraction,
            settings.counter_offer_amount_step,
            settings.counter_offer_max_amounts,
            tuple(settings.counter_offer_durations),
        )


@dataclass(frozen=True)
class CounterOffer:
    credit_amount: int
    duration_in_month: int
    probability_of_default: float


def offer_amounts(amount: int, bounds: OfferBounds) -> list[int]:
    """The requested amount, then multiples of the step below it down to the minimum fraction
    (highest first), at most `max_amounts` in all: a wide range gets a wider step (a multiple
    of `amount_step`) rather than losing its low end."""
    low = max(1, math.ceil(amount * bounds.min_amount_fraction))
    step = bounds.amount_step
    slots = bounds.max_amounts - 1
    count = (amount - 1) // step - (low - 1) // step  # multiples of step in [low, amount)
    if slots <= 0 or count <= 0:
        return [amount]
    step *= math.ceil(count / slots)
    top = (amount - 1) // step * step
    return [amount, *range(top, low - 1, -step)][: bounds.max_amounts]


def candidate_terms(amount: int, duration: int, bounds: OfferBounds) -> tuple[np.ndarray, ...]:
    """The grid for one declined request: every offered amount x every allowed duration (the
    requested one included), without the requested terms themselves; int64 arrays."""
    durations = sorted({*bounds.durations, duration})
    pairs = [(a, d) for a in offer_amounts(amount, bounds) for d in durations]
    pairs = [(a, d) for a, d in pairs if (a, d) != (amount, duration)]
    grid = np.array(pairs, dtype="int64").reshape(-1, 2)
    return grid[:, 0], grid[:, 1]


def choose_offer(
    amounts: np.ndarray, durations: np.ndarray, approvable: np.ndarray, requested_duration: int
) -> int | None:
    """The best approvable candidate, as an index into the grid; None if none is approvable.

    "Best" is the one closest to what was asked, in this order: the highest amount (the
    applicant asked for the money; a longer term for the same amount beats less money), then
    the duration nearest the requested one, then the shorter of two equally near durations
    (less interest for the applicant, less time at risk for the lender).
    """
    (candidates,) = np.nonzero(np.asarray(approvable, dtype=bool))
    if candidates.size == 0:
        return None
    amounts, durations = np.asarray(amounts)[candidates], np.asarray(durations)[candidates]
    # lexsort: the last key is the primary one.
    order = np.lexsort((durations, np.abs(durations - requested_duration), -amounts))
    return int(candidates[order[0]])


def model_margins(compiled: CompiledModel, matrix: np.ndarray) -> np.ndarray:
    """Log-odds of default for encoded rows, float64: XGBoost's in-place margin (no DMatrix,
    no contributions: a fraction of the decision path's call per row)."""
    model = compiled.model
    if model.kind == "xgboost":
        margin = model.estimator.inplace_predict(
            matrix, predict_type="margin", validate_features=False
        )
        return np.asarray(margin, dtype="float64")
    return compiled.contributions(matrix).sum(axis=1)


def counter_offers(
    compiled: CompiledModel,
    columns: Mapping[str, Sequence],
    rows: Sequence[int],
    threshold: float | None,
    bounds: OfferBounds,
) -> list[CounterOffer | None]:
    """The best approvable terms for each of `rows` (declines) of the raw model columns, with
    every row's grid scored in one model call; None where nothing within bounds is approvable.

    Each candidate is the applicant's encoded row with the terms and their request-time
    features (`application_feature_values`, as the request path computes them) replaced, so
    submitting the offered terms reproduces the candidate's model input exactly.
    """
    grids = [_grid(columns, i, bounds) for i in rows]
    sizes = [len(g[0]) for g in grids]
    if not sum(sizes):
        return [None] * len(rows)
    base = compiled.encode(
        {c: [columns[c][i] for i in rows] for c in compiled.raw_columns}, len(rows)
    )
    matrix = np.repeat(base, sizes, axis=0)
    amounts = np.concatenate([g[0] for g in grids])
    durations = np.concatenate([g[1] for g in grids])
    rate, age = (np.repeat(_floats(columns, c, rows), sizes) for c in OTHER_INPUTS)
    derived = application_feature_values(
        amounts.astype("float64"), durations.astype("float64"), rate, age
    )
    replaced = {"credit_amount": amounts, "duration_in_month": durations, **derived}
    for column, j in compiled.numeric:
        if column in replaced:
            matrix[:, j] = replaced[column]
    margins = model_margins(compiled, matrix)
    cut = compiled.threshold if threshold is None else threshold
    approvable = margins < math.log(cut / (1 - cut)) - MARGIN_GUARD
    out: list[CounterOffer | None] = []
    start = 0
    for (amount_grid, duration_grid), size, i in zip(grids, sizes, rows, strict=True):
        window = slice(start, start + size)
        start += size
        asked = _whole(columns["duration_in_month"][i])
        pick = (
            None
            if not size
            else choose_offer(amount_grid, duration_grid, approvable[window], asked)
        )
        if pick is None:
            out.append(None)
            continue
        margin = margins[window][pick]
        pd_offer = float(sigmoid(np.float64(margin)))
        out.append(CounterOffer(int(amount_grid[pick]), int(duration_grid[pick]), pd_offer))
    return out


def _floats(columns: Mapping[str, Sequence], name: str, rows: Sequence[int]) -> np.ndarray:
    """An input of the request-time features as float64, NaN for missing (as `model_inputs`
    builds it, so the derived values are bit for bit the request path's)."""
    values = columns[name]
    return np.array([np.nan if values[i] is None else values[i] for i in rows], dtype="float64")


def _grid(columns: Mapping[str, Sequence], i: int, bounds: OfferBounds) -> tuple[np.ndarray, ...]:
    """Row i's candidates; none when its terms are not usable numbers."""
    amount, duration = (_whole(columns[c][i]) for c in TERMS)
    if amount is None or duration is None:
        empty = np.empty(0, dtype="int64")
        return empty, empty
    return candidate_terms(amount, duration, bounds)


def _whole(value) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number >= 1 else None
