"""Counter-offers without Ray: the grid stays within its bounds, the choice follows the
documented order, and on a monotone toy model the offer is the best candidate the decision path
itself approves, and is approved when submitted."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xgboost as xgb

from app.features.online import OnlineRows, model_inputs
from app.training.compiled import CompiledModel
from app.training.model import CreditModel
from app.training.offers import (
    CounterOffer,
    OfferBounds,
    candidate_terms,
    choose_offer,
    counter_offers,
    offer_amounts,
)
from app.training.preprocess import FeatureEncoder
from tests.utils.datasets import german

REQUEST_COLUMNS = german().request_columns

CUT = 0.5
LIMIT = 6000  # the toy's rule: bad when the amount is above this or the duration above 40


@pytest.fixture(scope="module")
def toy(frame) -> CompiledModel:
    """PD rises with amount and duration (monotone constraints), with a sharp step at the rule."""
    encoder = FeatureEncoder.for_dataset(german())
    label = (frame["credit_amount"] > LIMIT) | (frame["duration_in_month"] > 40)
    dtrain = xgb.DMatrix(
        encoder.transform(frame), label=label.astype(int), feature_names=encoder.feature_names
    )
    params = {
        "objective": "binary:logistic",
        "max_depth": 2,
        "eta": 0.3,
        "nthread": 1,
        "monotone_constraints": {"credit_amount": 1, "duration_in_month": 1},
    }
    return CompiledModel(CreditModel("xgboost", encoder, xgb.train(params, dtrain, 60), CUT))


def inputs(row: dict, amount: int, duration: int) -> dict[str, list]:
    """The model inputs the request path builds for this applicant asking for these terms."""
    derived = set(german().derived_names)
    stored = {c: [v] for c, v in row.items() if c not in REQUEST_COLUMNS and c not in derived}
    request = {c: [row[c]] for c in REQUEST_COLUMNS} | {"applicant_id": ["x"]}
    request |= {"credit_amount": [amount], "duration_in_month": [duration]}
    return model_inputs(OnlineRows(stored, np.array([True]), [None]), request, german())


def decision(toy: CompiledModel, row: dict, amount: int, duration: int) -> tuple[str, float]:
    scores = toy.score(inputs(row, amount, duration), 1)
    return scores.decisions[0], float(scores.probability_of_default[0])


@pytest.fixture(scope="module")
def declined(frame, toy) -> dict:
    """A declined applicant of the shipped data asking for 8,000 DM over 24 months."""
    for row in frame.to_dict("records"):
        if decision(toy, row, 8000, 24)[0] == "decline" and decision(toy, row, 4000, 24)[0] == (
            "approve"
        ):
            return row
    raise AssertionError("the toy model declines no one at 8,000 DM")


@pytest.mark.parametrize("amount", [1, 240, 250, 1000, 2999, 8000, 18424])
@pytest.mark.parametrize("fraction,step,most", [(0.5, 250, 16), (0.8, 100, 4), (0.25, 1, 64)])
def test_amounts_stay_within_their_bounds(amount, fraction, step, most):
    bounds = OfferBounds(fraction, step, most)
    amounts = offer_amounts(amount, bounds)
    assert amounts[0] == amount and len(amounts) <= most
    assert amounts == sorted(set(amounts), reverse=True)
    lower = amounts[1:]
    assert all(a % step == 0 and math.ceil(amount * fraction) <= a < amount for a in lower)
    # Covered down to its low end: one (possibly widened) step lower is out of bounds.
    if len(lower) > 1:
        assert lower[-1] - (lower[0] - lower[1]) < math.ceil(amount * fraction)


def test_the_grid_holds_allowed_durations_and_never_the_asked_terms():
    bounds = OfferBounds(0.5, 500, 5, (12, 36))
    amounts, durations = candidate_terms(3000, 24, bounds)
    pairs = set(zip(amounts.tolist(), durations.tolist(), strict=True))
    assert (3000, 24) not in pairs
    assert {d for _, d in pairs} == {12, 24, 36}
    assert {a for a, _ in pairs} == {3000, 2500, 2000, 1500}
    assert len(pairs) == len(amounts) == 4 * 3 - 1
    assert candidate_terms(100, 24, OfferBounds(0.5, 250, 16, ()))[0].size == 0


def test_best_is_the_highest_amount_then_the_nearest_duration_then_the_shorter():
    amounts = np.array([3000, 3000, 2500, 2500, 2500, 2000])
    durations = np.array([12, 48, 18, 30, 36, 24])
    assert choose_offer(amounts, durations, np.ones(6, bool), 24) == 0  # amount first
    approvable = np.array([False, False, True, True, True, True])
    assert choose_offer(amounts, durations, approvable, 24) == 2  # 18 and 30 tie: shorter
    approvable[2] = False
    assert choose_offer(amounts, durations, approvable, 24) == 3  # 30 is nearer than 36
    assert choose_offer(amounts, durations, np.zeros(6, bool), 24) is None


def test_offer_is_the_best_candidate_the_decision_path_approves(toy, declined):
    bounds = OfferBounds(0.5, 250, 16, (12, 24, 36, 48))
    (offer,) = counter_offers(toy, inputs(declined, 8000, 24), [0], None, bounds)
    assert isinstance(offer, CounterOffer)
    amounts, durations = candidate_terms(8000, 24, bounds)
    approved = [
        decision(toy, declined, a, d)[0] == "approve"
        for a, d in zip(amounts.tolist(), durations.tolist(), strict=True)
    ]
    best = choose_offer(amounts, durations, np.array(approved), 24)
    assert (offer.terms["credit_amount"], offer.terms["duration_in_month"]) == (
        amounts[best],
        durations[best],
    )
    assert offer.terms["credit_amount"] <= LIMIT < 8000 and offer.terms["duration_in_month"] == 24
    # Submitted as a new application, the offered terms are approved, with the offered PD.
    outcome, pd_value = decision(
        toy, declined, offer.terms["credit_amount"], offer.terms["duration_in_month"]
    )
    assert outcome == "approve" and offer.probability_of_default < CUT
    assert offer.probability_of_default == pytest.approx(pd_value, abs=1e-5)


def test_no_offer_when_nothing_within_bounds_is_approvable(toy, declined):
    columns = inputs(declined, 8000, 24)
    # Nothing below 7,200 DM may be offered, and the toy declines everything above 6,000.
    assert counter_offers(toy, columns, [0], None, OfferBounds(0.9, 250, 16, (12, 24))) == [None]
    # A stricter cut-off than the model's declines every candidate too.
    assert counter_offers(toy, columns, [0], 1e-6, OfferBounds()) == [None]


def test_each_decline_of_a_batch_gets_its_own_offer_from_one_call(toy, declined):
    asks = [(8000, 24), (2000, 60), (9000, 48)]
    rows = [inputs(declined, a, d) for a, d in asks]
    columns = {c: [v for r in rows for v in r[c]] for c in rows[0]}
    columns["age_in_years"][2] = None  # a missing stored value stays missing (NaN)
    bounds = OfferBounds(0.5, 250, 16, (12, 24, 36))
    offers = counter_offers(toy, columns, [0, 1, 2], None, bounds)
    assert [o.terms["duration_in_month"] for o in offers[:2]] == [
        24,
        36,
    ]  # 36: nearest to 60 allowed
    assert offers[1].terms["credit_amount"] == 2000  # the amount asked for, over a shorter term
    for (amount, _), offer in zip(asks, offers, strict=True):
        assert offer is not None and offer.terms["credit_amount"] <= amount
        assert decision(
            toy, declined, offer.terms["credit_amount"], offer.terms["duration_in_month"]
        )[0] == ("approve")


def test_unusable_terms_get_no_offer(toy, declined):
    columns = inputs(declined, 8000, 24)
    columns["credit_amount"] = [None]
    assert counter_offers(toy, columns, [0], None, OfferBounds()) == [None]
    both = {c: v * 2 for c, v in inputs(declined, 8000, 24).items()}
    both["duration_in_month"][0] = None  # this row is unusable, the other still gets its offer
    first, second = counter_offers(toy, both, [0, 1], None, OfferBounds())
    assert first is None and second is not None


def test_bounds_come_from_the_settings(make_settings):
    settings = make_settings(
        counter_offer_min_amount_fraction=0.7,
        counter_offer_amount_step=100,
        counter_offer_max_amounts=8,
        counter_offer_durations=[12, 24],
    )
    assert OfferBounds.from_settings(settings) == OfferBounds(0.7, 100, 8, (12, 24))
