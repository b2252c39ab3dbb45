"""Counter-offers on the decision path without Ray: the champion's declines get one (answered and
logged), approvals, the challenger's answers, shadow scores and a switched-off config never do,
and the offered terms are approved when submitted."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from app.config import SHIPPED_DATA_PATH
from app.data.warehouse import load_raw
from app.features.online import OnlineRows
from app.serving.bodies import api_models
from app.serving.decide import decide_batch, features_of, shadow_records
from app.serving.models import ModelSet
from app.serving.routing import RoutingConfig
from app.training.model import CreditModel
from app.training.offers import OfferBounds
from app.training.preprocess import FeatureEncoder
from app.training.source import ServedModel
from tests.utils.datasets import german

REQUEST_COLUMNS = german().request_columns

DecisionRequest = api_models(german()).DecisionRequest

OFFERS = OfferBounds(0.5, 250, 16, (12, 24, 36))
LOGGED = ("credit_amount", "duration_in_month", "probability_of_default")


@pytest.fixture(scope="module")
def applicants() -> pd.DataFrame:
    raw = load_raw(SHIPPED_DATA_PATH, german()).head(40).reset_index(drop=True)
    raw["applicant_id"] = [f"A{i:03d}" for i in range(len(raw))]
    return raw


@pytest.fixture(scope="module")
def models(applicants) -> ModelSet:
    """v1 champion, v2 challenger: the same toy (PD rises with amount and duration)."""
    frame = load_raw(SHIPPED_DATA_PATH, german())
    frame = pd.concat([frame, german().derive_frame(frame)], axis=1)
    encoder = FeatureEncoder.for_dataset(german())
    label = (frame["credit_amount"] > 6000) | (frame["duration_in_month"] > 40)
    dtrain = xgb.DMatrix(encoder.transform(frame), label=label.astype(int))
    params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.3, "nthread": 1}
    params["monotone_constraints"] = {"credit_amount": 1, "duration_in_month": 1}
    model = CreditModel("xgboost", encoder, xgb.train(params, dtrain, 60), 0.5)
    return ModelSet(ServedModel("credit_risk", "1", model), ServedModel("credit_risk", "2", model))


def ask(applicants: pd.DataFrame, terms: list[tuple[int, int, int]]):
    """Requests of applicants i for (amount, duration), with their stored features."""
    requests, stored = [], []
    for i, amount, duration in terms:
        row = applicants.iloc[i].to_dict()
        application = {c: row[c] for c in REQUEST_COLUMNS}
        application |= {"credit_amount": amount, "duration_in_month": duration}
        requests.append(DecisionRequest(applicant_id=row["applicant_id"], application=application))
        skip = {*REQUEST_COLUMNS, *german().derived_names, "applicant_id"}
        stored.append({c: v for c, v in row.items() if c not in skip})
    columns = {c: [s[c] for s in stored] for c in stored[0]}
    known = np.ones(len(requests), dtype=bool)
    rows = OnlineRows(columns, known, [datetime(2026, 1, 1, tzinfo=UTC)] * len(requests))
    return requests, features_of(rows, requests, german())


TERMS = [(0, 9000, 24), (1, 2000, 60), (2, 1500, 12)]  # two declines, one approval


def test_champion_declines_get_an_offer_that_is_logged_and_approved_when_taken(applicants, models):
    requests, features = ask(applicants, TERMS)
    scored = decide_batch(requests, features, models, RoutingConfig(), OFFERS)
    answers = [o.response for o in scored.outcomes]
    assert [a.decision for a in answers] == ["decline", "decline", "approve"]
    assert answers[2].counter_offer is None
    offers = [a.counter_offer for a in answers[:2]]
    assert all(o is not None for o in offers)
    assert offers[0].credit_amount <= 6000 and offers[0].duration_in_month == 24
    assert (offers[1].credit_amount, offers[1].duration_in_month) == (2000, 36)
    by_id = {r["request_id"]: r for r in scored.records}
    for answer in answers:
        record = by_id[answer.request_id]
        offer = answer.counter_offer
        assert [record[f"counter_offer_{n}"] for n in LOGGED] == (
            [getattr(offer, n) for n in LOGGED] if offer else [None] * 3
        )
    taken = [
        (i, o.credit_amount, o.duration_in_month)
        for (i, *_), o in zip(TERMS[:2], offers, strict=True)
    ]
    retry, retry_features = ask(applicants, taken)
    again = decide_batch(retry, retry_features, models, RoutingConfig(), OFFERS)
    for outcome, offer in zip(again.outcomes, offers, strict=True):
        assert outcome.response.decision == "approve"
        assert outcome.response.counter_offer is None
        assert outcome.response.probability_of_default == pytest.approx(
            offer.probability_of_default, abs=1e-5
        )


def test_no_offer_when_switched_off_from_the_challenger_or_in_shadow(applicants, models):
    requests, features = ask(applicants, TERMS)
    off = decide_batch(requests, features, models, RoutingConfig(), None)
    assert [o.response.counter_offer for o in off.outcomes] == [None] * 3
    assert all(r["counter_offer_credit_amount"] is None for r in off.records)

    challenger = RoutingConfig(challenger_weight=1.0)
    by_challenger = decide_batch(requests, features, models, challenger, OFFERS)
    assert {o.response.model.variant for o in by_challenger.outcomes} == {"challenger"}
    assert [o.response.counter_offer for o in by_challenger.outcomes] == [None] * 3

    shadowed = decide_batch(requests, features, models, RoutingConfig(shadow=True), OFFERS)
    assert shadowed.shadow_rows == [0, 1, 2]
    records = shadow_records(models.challenger, features, shadowed, None)
    assert records and all(r["counter_offer_credit_amount"] is None for r in records)
