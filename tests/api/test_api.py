"""The decision API in-process: shapes, bad input, routing and shadow answers, and property
tests of every route, against the real app, models and online store (no Ray, no server)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.predictions.schema import schema_for
from app.serving.routing import RoutingConfig, sticky_bucket
from tests.utils.datasets import german
from tests.utils.fuzz import (
    check_answer,
    content_types,
    decision_requests,
    examples,
    raw_bodies,
)
from tests.utils.serving import application, assert_decision_shape
from tests.utils.serving import body as serving_body

APPLICANTS = 1000  # the shipped data's applicants, A0000001 ...


def body(i: int) -> dict:
    return serving_body(i, prefix="A")


def test_decision_has_the_documented_shape(client):
    response = client.post("/v1/decisions", json=body(0))
    assert response.status_code == 200, response.text
    assert_decision_shape(response.json(), "A0000001")
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ok"}
    status = client.get("/v1/status").json()
    assert (status["status"], status["replica"]) == ("ok", "local")
    assert (status["champion"], status["challenger"]) == ("1", "2")
    assert status["feature_store"] == "connected"
    schema = client.get("/openapi.json").json()
    paths = {"/v1/decisions", "/v1/decisions/batch", "/v1/status", "/healthz", "/readyz"}
    assert paths <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


def test_declines_always_carry_reasons(client):
    out = client.post("/v1/decisions/batch", json={"requests": [body(i) for i in range(100)]})
    decisions = out.json()["decisions"]
    assert not out.json()["errors"] and len(decisions) == 100
    declines = [d for d in decisions if d["decision"] == "decline"]
    assert declines and all(1 <= len(d["reasons"]) <= 4 for d in declines)
    assert all(len(d["reasons"]) <= 4 for d in decisions)


def test_each_applicant_gets_the_variant_the_sticky_hash_gives(client, routing):
    routing(challenger_weight=0.3)
    batch = [body(i) for i in range(APPLICANTS)]
    answered = []
    for start in range(0, APPLICANTS, 100):
        out = client.post("/v1/decisions/batch", json={"requests": batch[start : start + 100]})
        answered += out.json()["decisions"]
    salt = RoutingConfig().salt
    expected = [
        ("challenger", "2") if sticky_bucket(b["applicant_id"], salt) < 0.3 else ("champion", "1")
        for b in batch
    ]
    assert [(d["model"]["variant"], d["model"]["version"]) for d in answered] == expected
    routing(challenger_weight=1.0)
    assert client.post("/v1/decisions", json=body(0)).json()["model"]["version"] == "2"


def test_shadow_never_changes_the_answer(client, routing):
    routing(challenger_weight=0.0, shadow=False)
    plain = [client.post("/v1/decisions", json=body(i)).json() for i in range(20)]
    routing(challenger_weight=0.0, shadow=True)
    shadowed = [client.post("/v1/decisions", json=body(i)).json() for i in range(20)]

    def strip(out):
        return {k: v for k, v in out.items() if k != "request_id"}

    assert [strip(o) for o in shadowed] == [strip(o) for o in plain]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"application": application(0)}, "applicant_id"),
        ({"applicant_id": "A0000001"}, "application"),
        (
            {"applicant_id": "A0000001", "application": {**application(0), "credit_amount": 0}},
            "application.credit_amount",
        ),
        (
            {"applicant_id": "A0000001", "application": {**application(0), "purpose": "yacht"}},
            "application.purpose",
        ),
        (
            {
                "applicant_id": "A0000001",
                "application": {**application(0), "duration_in_month": 121},
            },
            "application.duration_in_month",
        ),
        (
            {
                "applicant_id": "A0000001",
                "application": {
                    **application(0),
                    "installment_rate_in_percentage_of_disposable_income": 5,
                },
            },
            "application.installment_rate_in_percentage_of_disposable_income",
        ),
        ({**body(0), "extra": 1}, "extra"),
    ],
)
def test_invalid_bodies_get_422_naming_the_field(client, payload, field):
    response = client.post("/v1/decisions", json=payload)
    assert response.status_code == 422
    assert field in [p["field"] for p in response.json()["detail"]]


def test_malformed_json_unknown_applicant_and_batch_limits(client):
    response = client.post(
        "/v1/decisions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422 and "Traceback" not in response.text

    unknown = client.post("/v1/decisions", json={**body(0), "applicant_id": "NOBODY"})
    assert unknown.status_code == 404 and "NOBODY" in unknown.json()["detail"]

    too_many = {"requests": [body(i) for i in range(101)]}
    response = client.post("/v1/decisions/batch", json=too_many)
    assert response.status_code == 413 and "limit is 100" in response.json()["detail"]

    mixed = {"requests": [body(0), {**body(1), "applicant_id": "NOBODY"}, body(2)]}
    out = client.post("/v1/decisions/batch", json=mixed).json()
    assert [d["applicant_id"] for d in out["decisions"]] == ["A0000001", "A0000003"]
    assert out["errors"] == [
        {
            "index": 1,
            "applicant_id": "NOBODY",
            "status": 404,
            "detail": "unknown applicant_id 'NOBODY': no features",
        }
    ]


def test_no_drift_monitor_is_a_503_naming_it(client):
    import ray

    response = client.get("/v1/monitoring/drift")
    assert response.status_code == 503
    error_id = response.json()["error_id"]
    assert response.json()["detail"] == f"drift monitor unavailable (error id {error_id})"
    assert response.headers["Retry-After"] == "5"
    assert not ray.is_initialized()  # the in-process service never starts a Ray


# --- property tests: whatever a client sends, a typed 2xx/4xx with a JSON detail ------------

FUZZ = examples(150)
requests_ = decision_requests("A", APPLICANTS)


@FUZZ
@given(payload=requests_)
def test_decisions_never_answer_500(client, payload):
    check_answer(client.post("/v1/decisions", json=payload))


@FUZZ
@given(items=st.lists(st.one_of(requests_, st.just(body(0))), max_size=5))
def test_batches_never_answer_500(client, items):
    check_answer(client.post("/v1/decisions/batch", json={"requests": items}))


@FUZZ
@given(raw=raw_bodies, content_type=content_types)
def test_raw_bodies_never_answer_500(client, raw, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    check_answer(client.post("/v1/decisions", content=raw, headers=headers))


def test_a_retry_with_its_idempotency_key_gets_the_first_answer_not_a_second_decision(
    client, service
):
    logged = service.prediction_log.pending
    headers = {"Idempotency-Key": "loan-7781:attempt"}
    first = client.post("/v1/decisions", json=body(4), headers=headers)
    again = client.post("/v1/decisions", json=body(4), headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()  # same request_id, PD, reasons
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert service.prediction_log.pending == logged + 1  # one decision, one log row

    other = client.post("/v1/decisions", json=body(5), headers=headers)
    assert other.status_code == 422 and "different request" in other.json()["detail"]

    bad = client.post("/v1/decisions", json=body(4), headers={"Idempotency-Key": "a b"})
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["detail"]

    # Without a key every request is its own decision.
    plain = [client.post("/v1/decisions", json=body(4)).json()["request_id"] for _ in range(2)]
    assert plain[0] != plain[1]


def test_an_unknown_applicant_frees_its_key_and_the_log_records_the_key(client, service):
    from app.predictions.log import read_prediction_log

    headers = {"Idempotency-Key": "k-404"}
    unknown = {**body(0), "applicant_id": "NOBODY"}
    assert client.post("/v1/decisions", json=unknown, headers=headers).status_code == 404
    answered = client.post("/v1/decisions", json=body(0), headers=headers)
    assert answered.status_code == 200

    # The decision record carries the key, so a lender can reconcile retries by it.
    service.prediction_log.flush(force=True)
    logged = read_prediction_log(
        service.settings.prediction_log_dir, schema_for(german())
    ).to_pandas()
    row = logged[logged["request_id"] == answered.json()["request_id"]]
    assert row["idempotency_key"].tolist() == ["k-404"]
    assert row["caller"].tolist() == ["all"]
