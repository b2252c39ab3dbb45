"""The Open Inference Protocol's REST door in-process: the same decision, record and limits as
/v1 (idempotency, a version asked for directly, batch limits, whole-or-nothing tensors) and
the protocol's error bodies."""

from __future__ import annotations

from tests.utils.serving import body as serving_body
from tests.utils.v2 import MODEL, infer_body, rows, same_answer

INFER = f"/v2/models/{MODEL}/infer"


def body(i: int) -> dict:
    return serving_body(i, prefix="A")


def test_the_probes_and_metadata_are_the_protocols(client):
    assert client.get("/v2/health/live", headers={}).json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]
    meta = client.get(f"/v2/models/{MODEL}").json()
    assert meta["versions"] == ["1", "2"]
    assert {o["name"]: o["datatype"] for o in meta["outputs"]}["probability_of_default"] == "FP64"
    assert client.get(f"/v2/models/{MODEL}/versions/2").json()["versions"] == ["2"]
    assert client.get(f"/v2/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}
    missing = client.get(f"/v2/models/{MODEL}/versions/7/ready")
    assert missing.status_code == 404 and "loaded: 1 (champion), 2 (challenger)" in missing.text
    assert client.get("/v2/models/other").json() == {
        "error": f"unknown model 'other'; this service serves {MODEL!r}"
    }


def test_a_version_asked_for_directly_answers_every_row(client, routing):
    routing(challenger_weight=0.0)
    bodies = [body(i) for i in range(6)]
    pinned = client.post(f"/v2/models/{MODEL}/versions/2/infer", json=infer_body(bodies))
    assert pinned.status_code == 200, pinned.text
    assert {r["variant"] for r in rows(pinned.json())} == {"challenger"}
    assert pinned.json()["model_version"] == "2"
    routed = rows(client.post(INFER, json=infer_body(bodies)).json())
    assert {r["variant"] for r in routed} == {"champion"}


def test_retries_with_an_idempotency_key_get_the_first_answer(client):
    first = client.post(INFER, json=infer_body([body(3)]), headers={"Idempotency-Key": "v2-k1"})
    again = client.post(INFER, json=infer_body([body(3)], parameters={"idempotency_key": "v2-k1"}))
    assert first.status_code == again.status_code == 200, again.text
    assert rows(again.json())[0]["request_id"] == rows(first.json())[0]["request_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["parameters"] == {"idempotent_replayed": True}
    many = client.post(INFER, json=infer_body([body(1), body(2)]), headers={"Idempotency-Key": "k"})
    assert many.status_code == 400 and "one-row request" in many.json()["error"]


def test_a_tensor_is_answered_whole_or_not_at_all(client, service):
    journaled = service.prediction_log.journaled
    bodies = [body(i) for i in range(3)] + [body(0) | {"applicant_id": "A9999999"}]
    answer = client.post(INFER, json=infer_body(bodies))
    assert answer.status_code == 404
    assert answer.json()["error"].startswith("row 3: unknown applicant_id 'A9999999'")
    assert "no row of this request was decided" in answer.json()["error"]
    assert service.prediction_log.journaled == journaled  # nothing decided, nothing recorded


def test_malformed_requests_get_400_naming_the_problem(client):
    one = infer_body([body(0)])
    cases = {
        "unknown input 'colour'": {
            "inputs": [*one["inputs"], {**one["inputs"][0], "name": "colour"}]
        },
        "missing input 'purpose'": {"inputs": [t for t in one["inputs"] if t["name"] != "purpose"]},
        "datatype FP32; expected BYTES": {
            "inputs": [
                {**t, "datatype": "FP32"} if t["name"] == "purpose" else t for t in one["inputs"]
            ]
        },
        "2 values for shape [1]": {
            "inputs": [
                {**t, "data": t["data"] * 2} if t["name"] == "purpose" else t for t in one["inputs"]
            ]
        },
        "unknown output 'score'": {**one, "outputs": [{"name": "score"}]},
    }
    for expected, request in cases.items():
        response = client.post(INFER, json=request)
        assert response.status_code == 400, (expected, response.text)
        assert expected in response.json()["error"], (expected, response.json())
    assert client.post(INFER, content=b"{not json").status_code == 400


def test_batch_limits_and_scopes_are_the_v1_ones(make_client, tokens, client, routing):
    routing(max_batch_requests=2)
    too_many = client.post(INFER, json=infer_body([body(i) for i in range(3)]))
    assert too_many.status_code == 413 and "the limit is 2" in too_many.json()["error"]
    decide_only = {"Authorization": f"Bearer {tokens['decide']}"}
    batch = client.post(INFER, json=infer_body([body(1), body(2)]), headers=decide_only)
    assert batch.status_code == 403 and "decisions:batch" in batch.json()["error"]
    nobody = client.post(INFER, json=infer_body([body(1)]), headers={"Authorization": ""})
    assert nobody.status_code == 401 and nobody.json() == {"error": "bearer token required"}


def test_requested_outputs_only(client):
    answer = client.post(
        INFER, json=infer_body([body(0)], outputs=[{"name": "decision"}], id="req-9")
    ).json()
    assert [o["name"] for o in answer["outputs"]] == ["decision"] and answer["id"] == "req-9"


def test_v2_answers_are_v1_answers(client):
    bodies = [body(i) for i in range(20)]
    v1 = [client.post("/v1/decisions", json=b).json() for b in bodies]
    for answer, row in zip(
        v1, rows(client.post(INFER, json=infer_body(bodies)).json()), strict=True
    ):
        same_answer(answer, row)
