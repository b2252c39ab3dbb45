"""Counter-offers for declines: the best terms a model would approve, from one model pass.

The terms are the dataset spec's offer levers (`offers.amount`, `offers.term`): request fields
the applicant chose, which the lender may lower (amount) or change (term). A spec without
levers makes no offers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.dataset.expressions import as_floats
from app.training.compiled import CompiledModel
from app.training.model import sigmoid
from app.training.treeshap import CodedShap

# Offered only when this far (log-odds) below the cut-off: the grid scores with XGBoost's plain
# margin, the decision path sums per-feature contributions, and the two differ by float
# rounding (measured < 1e-5); an offer must still be approved when the applicant takes it.
MARGIN_GUARD = 1e-3


@dataclass(frozen=True)
class OfferBounds:
    """Which terms may be offered (the counter_offer_* settings)."""

    min_amount_fraction: float = 0.5  # lowest amount offered, as a share of the request
    amount_step: int = 250  # offered amounts below the request are multiples of this
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
    """Offered terms (lever column -> value, amount first) and the PD the model gives them."""

    terms: dict[str, int]
    probability_of_default: float

    def as_dict(self) -> dict[str, int | float]:
        """The offer as the API and the logs spell it: each lever's column, then the PD."""
        return {**self.terms, "probability_of_default": self.probability_of_default}


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
    """Log-odds of default for encoded rows, float64: from the leaf tables where the model has
    them, else XGBoost's in-place margin (no DMatrix, no contributions)."""
    model = compiled.model
    # The leaf tables: no per-call overhead (XGBoost's is ~0.3 ms on this VM), ~3.4 µs a row
    # against XGBoost's ~2; used at every size so the batch job's offers are the API's exactly.
    if isinstance(compiled.explainer, CodedShap):
        return compiled.explainer.margins(matrix)
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
    every row's grid scored in one model call; None where nothing within bounds is approvable
    (always, when the model's dataset spec declares no levers).

    Each candidate is the applicant's encoded row with the levers and every derived feature
    replaced, the derived ones recomputed by the spec's definitions (`Dataset.derive`, as the
    request path computes them), so submitting the offered terms reproduces the candidate's
    model input exactly.
    """
    levers = compiled.model.dataset.spec.offers
    if levers is None:
        return [None] * len(rows)
    grids = [_grid(columns, i, bounds, levers.amount, levers.term) for i in rows]
    sizes = [len(g[0]) for g in grids]
    if not sum(sizes):
        return [None] * len(rows)
    margins = model_margins(compiled, _candidates(compiled, columns, rows, grids, sizes))
    cut = compiled.threshold if threshold is None else threshold
    approvable = margins < math.log(cut / (1 - cut)) - MARGIN_GUARD
    out: list[CounterOffer | None] = []
    start = 0
    for (amount_grid, duration_grid), size, i in zip(grids, sizes, rows, strict=True):
        window = slice(start, start + size)
        start += size
        asked = whole_units(columns[levers.term][i])
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
        terms = {levers.amount: int(amount_grid[pick]), levers.term: int(duration_grid[pick])}
        out.append(CounterOffer(terms, pd_offer))
    return out


def _candidates(
    compiled: CompiledModel,
    columns: Mapping[str, Sequence],
    rows: Sequence[int],
    grids: list[tuple[np.ndarray, ...]],
    sizes: list[int],
) -> np.ndarray:
    """Every row's grid as encoded model rows: the row repeated, its levers and every derived
    feature replaced (recomputed from the replaced levers)."""
    dataset = compiled.model.dataset
    levers = dataset.spec.offers
    base = compiled.encode(
        {c: [columns[c][i] for i in rows] for c in compiled.raw_columns}, len(rows)
    )
    matrix = np.repeat(base, sizes, axis=0)
    replaced: dict[str, np.ndarray] = {
        levers.amount: np.concatenate([g[0] for g in grids]),
        levers.term: np.concatenate([g[1] for g in grids]),
    }
    inputs = {
        c: np.repeat(as_floats([columns[c][i] for i in rows]), sizes)
        for c in dataset.derived_inputs
        if c not in replaced
    }
    inputs |= {c: v.astype("float64") for c, v in replaced.items()}
    replaced |= dataset.derive(inputs)
    for column, j in compiled.numeric:
        if column in replaced:
            matrix[:, j] = replaced[column]
    return matrix


def _grid(
    columns: Mapping[str, Sequence], i: int, bounds: OfferBounds, amount_lever: str, term: str
) -> tuple[np.ndarray, ...]:
    """Row i's candidates; none when its terms are not usable numbers."""
    amount, duration = (whole_units(columns[c][i]) for c in (amount_lever, term))
    if amount is None or duration is None:
        empty = np.empty(0, dtype="int64")
        return empty, empty
    return candidate_terms(amount, duration, bounds)


def whole_units(value) -> int | None:
    """A request's amount or term as whole units (truncated), None unless a number >= 1."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number >= 1 else None
