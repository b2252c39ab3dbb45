"""Counter-offers on the deployed app: a champion's decline carries the best terms it would
approve, logged with the decision and approved when the applicant submits them; null when no
terms are approvable, from the challenger, or with `counter_offers` off; batch scoring offers
the same."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.predictions.log import read_prediction_log
from app.predictions.schema import schema_for
from app.waiting import poll
from tests.utils.datasets import german
from tests.utils.serving import body

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]

OFFER = ("credit_amount", "duration_in_month", "probability_of_default")
# The shipped user_config's values of what these tests change, named so that `deploy` waits
# until the replica applies them (it compares only the keys given).
SHIPPED = {"challenger_weight": 0.0, "decision_threshold": None, "counter_offers": True}


def decide_many(served, count: int = 100) -> list[dict]:
    out = served.post("/v1/decisions/batch", {"requests": [body(i) for i in range(count)]})
    assert out.status_code == 200 and not out.json()["errors"], out.text[:500]
    return out.json()["decisions"]


def declines(answers: list[dict]) -> list[dict]:
    found = [a for a in answers if a["decision"] == "decline"]
    assert found, "no decline among the requests"
    return found


def logged(served, request_id: str) -> dict:
    def read():
        frame = read_prediction_log(
            served.settings.prediction_log_dir, schema_for(german())
        ).to_pandas()
        rows = frame[(frame["request_id"] == request_id) & frame["shadow"].eq(False)]
        return None if rows.empty else rows.iloc[0].to_dict()

    return poll(read, "the decision in the prediction log", 30)


def test_a_decline_gets_an_offer_that_is_logged_and_approved_when_submitted(served):
    served.deploy(**SHIPPED)  # champion only, counter_offers on
    answers = decide_many(served)
    assert all(a["counter_offer"] is None for a in answers if a["decision"] == "approve")
    offered = [a for a in declines(answers) if a["counter_offer"] is not None]
    assert offered, "no decline got a counter-offer"
    answer = offered[0]
    offer = answer["counter_offer"]
    index = int(answer["applicant_id"].removeprefix("S")) - 1
    asked = body(index)["application"]
    assert offer["credit_amount"] <= asked["credit_amount"]
    assert (offer["credit_amount"], offer["duration_in_month"]) != (
        asked["credit_amount"],
        asked["duration_in_month"],
    )
    assert offer["credit_amount"] >= asked["credit_amount"] * 0.5  # the default bounds
    assert offer["duration_in_month"] in {6, 12, 18, 24, 30, 36, 48, 60, asked["duration_in_month"]}
    assert offer["probability_of_default"] < 1 / 6 <= answer["probability_of_default"]

    record = logged(served, answer["request_id"])
    assert [record[f"counter_offer_{n}"] for n in OFFER] == pytest.approx([offer[n] for n in OFFER])

    taken = body(index)
    taken["application"] |= {k: offer[k] for k in ("credit_amount", "duration_in_month")}
    again = served.post("/v1/decisions", taken).json()
    assert again["decision"] == "approve" and again["counter_offer"] is None
    assert again["model"]["variant"] == "champion"
    assert again["probability_of_default"] == pytest.approx(
        offer["probability_of_default"], abs=1e-5
    )


def test_no_offer_without_approvable_terms_from_the_challenger_or_when_switched_off(served):
    try:
        # At this cut-off no terms at all are approvable: every decline's offer is null.
        served.deploy(decision_threshold=0.001)
        answers = decide_many(served, 30)
        assert all(a["decision"] == "decline" and a["counter_offer"] is None for a in answers)
        record = logged(served, answers[0]["request_id"])
        assert all(pd.isna(record[f"counter_offer_{n}"]) for n in OFFER)

        served.deploy(challenger_weight=1.0)
        answers = decide_many(served)
        assert {a["model"]["variant"] for a in answers} == {"challenger"}
        assert all(a["counter_offer"] is None for a in declines(answers))

        served.deploy(counter_offers=False)
        assert all(a["counter_offer"] is None for a in declines(decide_many(served)))
    finally:
        served.deploy(**SHIPPED)
    # Back on: declines get offers again.
    assert any(a["counter_offer"] is not None for a in declines(decide_many(served)))


def test_batch_scoring_offers_what_the_api_offers(served):
    from app.scoring import score_table, scores_path

    served.deploy(**SHIPPED)
    requests_ = [body(i) for i in range(40)]
    online = {a["applicant_id"]: a for a in decide_many(served, 40)}
    table = pd.DataFrame(
        [{"applicant_id": b["applicant_id"], **b["application"]} for b in requests_]
    )
    input_path = served.settings.data_dir / "offers_to_score.parquet"
    table.to_parquet(input_path)
    output = served.settings.data_dir / "offers_scored"
    report = score_table(
        served.settings, output_path=output, input_path=input_path, cpus_per_actor=0.25
    )
    assert report.offered == sum(a["counter_offer"] is not None for a in online.values()) > 0
    scored = pd.read_parquet(scores_path(output))
    for row in scored.to_dict("records"):
        offer = online[row["applicant_id"]]["counter_offer"]
        got = [row[f"counter_offer_{n}"] for n in OFFER]
        if offer is None:
            assert all(pd.isna(v) for v in got)
        else:
            assert got == pytest.approx([offer[n] for n in OFFER])
    schema = pq.ParquetDataset(scores_path(output)).schema  # a directory of parts
    assert schema.field("counter_offer_credit_amount").type == pa.int64()
