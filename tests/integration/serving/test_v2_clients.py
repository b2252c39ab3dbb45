"""The Open Inference Protocol with the clients its users have: tritonclient over REST and gRPC
and KServe's Python client get, for 50 applicants one by one and as one batch, exactly the
/v1/decisions answers; every error is the protocol's, on both transports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from app.serving.keys import KeyFile
from tests.utils import ROOT, wait_for
from tests.utils.serving import body
from tests.utils.v2 import MODEL, same_answer, triton_inputs, triton_rows

pytestmark = pytest.mark.integration
APPLICANTS = 50


@pytest.fixture(scope="module")
def clients(served):
    """tritonclient's HTTP and gRPC clients, the headers (and metadata) they send, and /v1's
    answers for the 50 applicants (champion only: the answers compare exactly)."""
    served.deploy()
    http = triton_http.InferenceServerClient(served.url.removeprefix("http://"))
    grpc = triton_grpc.InferenceServerClient(served.grpc)
    headers = {"Authorization": f"Bearer {served.token}"}
    # Serve's gRPC ingress picks the application by this metadata when it serves several.
    metadata = {"authorization": f"Bearer {served.token}", "application": served.name}
    bodies = [body(i) for i in range(APPLICANTS)]
    v1 = [served.post("/v1/decisions", b).json() for b in bodies]
    yield http, grpc, headers, metadata, bodies, v1
    http.close()
    grpc.close()


def test_tritonclient_gets_the_v1_answers_over_rest_and_grpc(clients):
    http, grpc, headers, metadata, bodies, v1 = clients
    assert http.is_server_live() and http.is_server_ready()
    assert grpc.is_server_live(headers=metadata) and grpc.is_model_ready(MODEL, headers=metadata)
    inputs = http.get_model_metadata(MODEL, headers=headers)["inputs"]
    assert [i["name"] for i in inputs][:2] == ["applicant_id", "credit_amount"]
    assert grpc.get_model_metadata(MODEL, headers=metadata).inputs[0].name == "applicant_id"
    for client, module, sent in ((http, triton_http, headers), (grpc, triton_grpc, metadata)):
        for one, answer in zip(bodies[:10], v1[:10], strict=True):
            (row,) = triton_rows(client.infer(MODEL, triton_inputs(module, [one]), headers=sent))
            same_answer(answer, row)
        batch = client.infer(MODEL, triton_inputs(module, bodies), headers=sent, request_id="b1")
        rows = triton_rows(batch)
        assert len(rows) == APPLICANTS and len({r["request_id"] for r in rows}) == APPLICANTS
        for answer, row in zip(v1, rows, strict=True):
            same_answer(answer, row)
    assert any(r["counter_offer"] for r in rows), "no decline with a counter-offer among 50"


def test_kserve_client_gets_the_v1_answers_over_rest_and_grpc(clients, served, tmp_path):
    *_, bodies, v1 = clients
    path = tmp_path / "bodies.json"
    path.write_text(json.dumps(bodies))
    run = [sys.executable, "-m", "tests.utils.kserve_client", served.url, served.grpc]
    done = subprocess.run(
        [*run, served.name, served.token, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["live"] == [True, True] and out["ready"] == [True, True]
    for transport in ("rest", "grpc"):
        for answer, row in zip(v1, out[transport], strict=True):
            row["reasons"] = json.loads(row["reasons"])
            row["counter_offer"] = json.loads(row["counter_offer"])
            same_answer(answer, row)


def _key(served, name: str, scopes: list[str], rate: float = 0) -> str:
    """A new key, once the replica has read it (it re-reads the keys file within a second)."""
    keys = KeyFile.read(served.settings.api_keys_file)
    token = keys.add(name, scopes, rate=rate)
    keys.write()
    probe = f"{served.url}/v2/models/{MODEL}/ready"
    headers = {"Authorization": f"Bearer {token}"}
    wait_for(lambda: requests.get(probe, headers=headers, timeout=10).status_code != 401, name)
    return token


def _refusals(served, clients) -> list[tuple[str, dict, list, int, str, str]]:
    """(case, headers, bodies, HTTP status, gRPC code, text in the message)."""
    *_, bodies, _ = clients
    token = served.token
    monitor = _key(served, "v2-monitor", ["monitoring:read"])
    single = _key(served, "v2-single", ["decisions"])
    unknown = body(0) | {"applicant_id": "S9999999"}
    bad = body(1)
    bad["application"] = {**bad["application"], "purpose": "yacht"}
    return [
        ("no token", {}, bodies[:1], 401, "UNAUTHENTICATED", "bearer token required"),
        ("bad token", {"Bearer": "nope"}, bodies[:1], 401, "UNAUTHENTICATED", "invalid"),
        ("missing scope", {"Bearer": monitor}, bodies[:1], 403, "PERMISSION_DENIED", "'decisions'"),
        (
            "batch scope",
            {"Bearer": single},
            bodies[:2],
            403,
            "PERMISSION_DENIED",
            "decisions:batch",
        ),
        ("unknown applicant", {"Bearer": token}, [unknown], 404, "NOT_FOUND", "S9999999"),
        ("bad category", {"Bearer": token}, [bad], 400, "INVALID_ARGUMENT", "purpose"),
    ]


def test_every_refusal_is_the_protocols_on_both_transports(clients, served):
    http, grpc, _, _, _, _ = clients
    for case, auth, sent, status, code, text in _refusals(served, clients):
        token = auth.get("Bearer")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        metadata = {"application": served.name} | (
            {"authorization": f"Bearer {token}"} if token else {}
        )
        with pytest.raises(InferenceServerException) as rest_error:
            http.infer(MODEL, triton_inputs(triton_http, sent), headers=headers)
        assert rest_error.value.status() == str(status), case
        assert text in rest_error.value.message(), (case, rest_error.value.message())
        with pytest.raises(InferenceServerException) as grpc_error:
            grpc.infer(MODEL, triton_inputs(triton_grpc, sent), headers=metadata)
        assert grpc_error.value.status() == f"StatusCode.{code}", case
        assert text in grpc_error.value.message(), (case, grpc_error.value.message())


def test_a_rate_limited_caller_gets_429_and_resource_exhausted(clients, served):
    http, grpc, _, _, bodies, _ = clients
    slow = _key(served, "v2-slow", ["decisions"], rate=0.01)  # burst of api_rate_burst, then 429
    headers = {"Authorization": f"Bearer {slow}"}
    metadata = {"authorization": f"Bearer {slow}", "application": served.name}
    codes = []
    for _ in range(served.settings.api_rate_burst + 1):
        for client, module, sent in ((http, triton_http, headers), (grpc, triton_grpc, metadata)):
            try:
                client.infer(MODEL, triton_inputs(module, bodies[:1]), headers=sent)
            except InferenceServerException as exc:
                codes.append(exc.status())
    assert "429" in codes and "StatusCode.RESOURCE_EXHAUSTED" in codes, codes
