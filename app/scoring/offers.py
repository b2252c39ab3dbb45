"""Counter-offers for a whole batch of declines, best amount first: the same offers as
`app.training.offers.counter_offers`, with far fewer candidates scored.

An offer is the approvable candidate with the highest amount, so the grid is scored one amount
level at a time, highest first, and a decline leaves the loop at the first level where some
duration is approvable: no lower amount could be chosen over it. Each candidate row is built
exactly as `app.training.offers` builds it and scored with the same margin call, and a row's
margin does not depend on the rows scored with it, so the chosen terms and PD are the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.dataset.expressions import as_floats
from app.training.compiled import CompiledModel
from app.training.model import sigmoid
from app.training.offers import MARGIN_GUARD, OfferBounds, model_margins, offer_amounts, whole_units


@dataclass(frozen=True)
class BatchOffers:
    """Per declined row (in the order given): offered amount, term and PD; `made` is False
    where no offer was made (the other values are then meaningless)."""

    made: np.ndarray  # bool
    amount: np.ndarray  # int64
    term: np.ndarray  # int64
    probability_of_default: np.ndarray  # float64


class _Levels:
    """Every declined row's amount levels (highest first) and its durations."""

    def __init__(self, asked: list[tuple[int, int] | None], bounds: OfferBounds) -> None:
        self.asked = asked
        self.amounts = [[] if a is None else offer_amounts(a[0], bounds) for a in asked]
        self.durations = [
            np.empty(0, "int64") if a is None else np.array(sorted({*bounds.durations, a[1]}))
            for a in asked
        ]
        self.requested = np.array([0 if a is None else a[1] for a in asked], dtype="int64")

    def grid(self, rows: Sequence[int], level: int) -> tuple[np.ndarray, ...]:
        """(row position, amount, duration) of every candidate of `rows` at `level`, the
        requested terms themselves left out."""
        terms = [self.durations[k] for k in rows]
        owner = np.repeat(np.asarray(rows, dtype="int64"), [len(t) for t in terms])
        durations = np.concatenate(terms).astype("int64")
        amounts = np.array([self.amounts[k][level] for k in rows], dtype="int64")
        amounts = np.repeat(amounts, [len(t) for t in terms])
        if level == 0:  # the requested amount: every duration but the requested one
            keep = durations != self.requested[owner]
            owner, amounts, durations = owner[keep], amounts[keep], durations[keep]
        return owner, amounts, durations


def batch_offers(
    compiled: CompiledModel,
    columns: Mapping[str, Sequence],
    rows: Sequence[int],
    threshold: float | None,
    bounds: OfferBounds,
) -> BatchOffers:
    """The counter-offer of each of `rows` (declines) of the raw model columns."""
    n = len(rows)
    out = BatchOffers(np.zeros(n, bool), np.zeros(n, "int64"), np.zeros(n, "int64"), np.zeros(n))
    levers = compiled.model.dataset.spec.offers
    if levers is None or not n:
        return out
    asked = [_terms(columns[levers.amount][i], columns[levers.term][i]) for i in rows]
    levels = _Levels(asked, bounds)
    cut = compiled.threshold if threshold is None else threshold
    limit = math.log(cut / (1 - cut)) - MARGIN_GUARD
    builder = _CandidateBuilder(compiled, columns, rows)
    open_rows = np.array([k for k in range(n) if levels.amounts[k]], dtype="int64")
    level = 0
    while open_rows.size:
        owner, amounts, durations = levels.grid(open_rows.tolist(), level)
        if owner.size:
            margins = model_margins(compiled, builder.build(owner, amounts, durations))
            found = _choose(owner, durations, margins < limit, asked)
            for k, pick in found.items():
                out.made[k] = True
                out.amount[k], out.term[k] = amounts[pick], durations[pick]
                out.probability_of_default[k] = float(sigmoid(np.float64(margins[pick])))
            open_rows = open_rows[~np.isin(open_rows, list(found))]
        level += 1
        open_rows = open_rows[[len(levels.amounts[k]) > level for k in open_rows.tolist()]]
    return out


def _terms(amount, term) -> tuple[int, int] | None:
    amount, term = whole_units(amount), whole_units(term)
    return None if amount is None or term is None else (amount, term)


def _choose(owner, durations, approvable, asked) -> dict[int, int]:
    """Row position -> index of its chosen candidate, for rows with an approvable one: the
    duration nearest the requested one, the shorter of two as near (`choose_offer`'s order
    within one amount)."""
    (candidates,) = np.nonzero(approvable)
    if not candidates.size:
        return {}
    requested = np.array([asked[k][1] for k in owner[candidates].tolist()], dtype="int64")
    d = durations[candidates]
    order = np.lexsort((d, np.abs(d - requested), owner[candidates]))
    ranked = candidates[order]
    first = np.unique(owner[ranked], return_index=True)[1]
    return dict(zip(owner[ranked[first]].tolist(), ranked[first].tolist(), strict=True))


class _CandidateBuilder:
    """Encoded candidate rows for `rows` of the raw columns: the row's encoding with the levers
    and every derived feature replaced (as `app.training.offers` builds them), the row
    encoded once for all levels."""

    def __init__(self, compiled: CompiledModel, columns: Mapping[str, Sequence], rows) -> None:
        self.compiled = compiled
        self.dataset = compiled.model.dataset
        self.levers = self.dataset.spec.offers
        picked = {c: [columns[c][i] for i in rows] for c in compiled.raw_columns}
        self.base = compiled.encode(picked, len(rows))
        replaced = (self.levers.amount, self.levers.term)
        self.inputs = {
            c: as_floats([columns[c][i] for i in rows])
            for c in self.dataset.derived_inputs
            if c not in replaced
        }

    def build(self, owner: np.ndarray, amounts: np.ndarray, durations: np.ndarray) -> np.ndarray:
        matrix = self.base[owner]
        replaced: dict[str, np.ndarray] = {self.levers.amount: amounts, self.levers.term: durations}
        inputs = {c: v[owner] for c, v in self.inputs.items()}
        inputs |= {c: v.astype("float64") for c, v in replaced.items()}
        replaced |= self.dataset.derive(inputs)
        for column, j in self.compiled.numeric:
            if column in replaced:
                matrix[:, j] = replaced[column]
        return matrix
