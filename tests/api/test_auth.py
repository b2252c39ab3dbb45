"""Who may call the API, and how much: every /v1 route against no token, a wrong token, a token
without the route's scope and one with it; key rotation and revocation through
`python -m jobs.api_keys` while the service runs; JWTs; rate and body limits, all enforced
before any work (the real app and service in process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.predictions.schema import schema_for
from tests.utils import ROOT, wait_for
from tests.utils.datasets import german
from tests.utils.serving import body as serving_body


def body(i: int) -> dict:
    return serving_body(i, prefix="A")


# (method, path, body, the scope it needs, its status for a caller holding that scope)
ROUTES = [
    ("POST", "/v1/decisions", body(0), "decisions", 200),
    ("POST", "/v1/decisions/batch", {"requests": [body(0)]}, "decisions:batch", 200),
    # No drift monitor runs in process: past the gate, the route's own 503.
    ("GET", "/v1/monitoring/drift", None, "monitoring:read", 503),
]
KEY_OF_SCOPE = {"decisions": "decide", "decisions:batch": "batch", "monitoring:read": "monitor"}


def call(client, method: str, path: str, payload, token: str | None = None, **headers):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    # Replace the client's default (the `all` key) rather than merge with it.
    headers.setdefault("Authorization", "")
    return client.request(method, path, json=payload, headers=headers)


@pytest.mark.parametrize(("method", "path", "payload", "scope", "granted"), ROUTES)
def test_every_route_admits_only_a_known_token_with_its_scope(
    client, tokens, method, path, payload, scope, granted
):
    missing = call(client, method, path, payload)
    assert missing.status_code == 401, missing.text
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json() == {"detail": "bearer token required"}

    wrong = call(client, method, path, payload, "crk_not-a-key")
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    basic = call(client, method, path, payload, Authorization="Basic dXNlcjpwdw==")
    assert basic.status_code == 401

    for other_scope, key in KEY_OF_SCOPE.items():
        response = call(client, method, path, payload, tokens[key])
        if other_scope == scope:
            assert response.status_code == granted, response.text
        else:
            assert response.status_code == 403, response.text
            assert f'scope="{scope}"' in response.headers["WWW-Authenticate"]
            assert scope in response.json()["detail"]


def test_probes_and_docs_stay_open_and_docs_show_the_scheme(client):
    for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert call(client, "GET", path, None).status_code == 200, path
    schema = call(client, "GET", "/openapi.json", None).json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for _, path, _, scope, _ in ROUTES:
        (operation,) = schema["paths"][path].values()
        assert operation["security"] == [{"bearer": [scope]}], path
        assert {"401", "403", "429"} <= set(operation["responses"]), path
    assert "security" not in schema["paths"]["/readyz"]["get"]


def test_a_stranger_learns_nothing_about_applicants(client):
    known = call(client, "POST", "/v1/decisions", body(0))
    unknown = call(client, "POST", "/v1/decisions", {**body(0), "applicant_id": "NOBODY"})
    garbage = client.post(
        "/v1/decisions", content=b"{not json", headers={"Authorization": "Bearer crk_x"}
    )
    assert known.status_code == unknown.status_code == garbage.status_code == 401
    assert known.json() == unknown.json()
    # Nor which routes exist: anything but the probes and docs is closed to strangers.
    assert call(client, "GET", "/v1/nothing-here", None).status_code == 401
    assert call(client, "GET", "/admin", None).status_code == 401
    assert client.get("/v1/nothing-here").status_code == 404  # with the client's key


def _api_keys(settings, *args: str) -> str:
    env = {**os.environ, "CREDIT_DATA_DIR": str(settings.data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "jobs.api_keys", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_keys_rotate_and_revoke_without_a_restart(client, api_settings):
    def status(token: str) -> int:
        return call(client, "POST", "/v1/decisions", body(1), token).status_code

    first = _api_keys(api_settings, "create", "--id", "rotating", "--scopes", "decisions")
    assert first.startswith("crk_")
    wait_for(lambda: status(first) == 200, "the new key to be accepted", 10, 0.1)
    stored = api_settings.api_keys_file.read_text()
    assert first not in stored  # only its hash is kept
    assert oct(api_settings.api_keys_file.stat().st_mode & 0o777) == "0o600"

    second = _api_keys(api_settings, "create", "--id", "rotating", "--scopes", "decisions")
    wait_for(lambda: status(first) == 401, "the rotated-out key to be refused", 10, 0.1)
    assert status(second) == 200
    listed = _api_keys(api_settings, "list")
    assert "rotating" in listed and second not in listed

    _api_keys(api_settings, "revoke", "--id", "rotating")
    wait_for(lambda: status(second) == 401, "the revoked key to be refused", 10, 0.1)


def test_the_prediction_log_names_the_caller(client, service, tokens):
    from app.predictions.log import read_prediction_log

    out = call(client, "POST", "/v1/decisions", body(3), tokens["decide"]).json()
    service.close()  # write what is buffered
    log = read_prediction_log(service.settings.prediction_log_dir, schema_for(german())).to_pylist()
    (record,) = [r for r in log if r["request_id"] == out["request_id"] and not r["shadow"]]
    assert record["caller"] == "decide"


def test_rate_limit_answers_429_with_retry_after(make_client, tokens):
    http = make_client(api_rate_per_second=0.5, api_rate_burst=3)
    limited = {"Authorization": "Bearer " + tokens["all"]}
    # `all` has its own rate (0: unlimited); a key without one gets the settings' rate.
    assert all(
        http.post("/v1/decisions", json=body(0), headers=limited).status_code == 200
        for _ in range(6)
    )
    token = tokens["limited"]
    statuses = [call(http, "POST", "/v1/decisions", body(0), token).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429], statuses
    refused = call(http, "POST", "/v1/decisions", body(0), token)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    # Another caller is not held back by this one.
    assert call(http, "POST", "/v1/decisions", body(0), tokens["limited-2"]).status_code == 200


def test_bodies_over_the_limit_get_413_before_parsing(client, service, tokens):
    limit = service.settings.api_max_body_bytes
    padding = "x" * (limit + 1)
    big = json.dumps({**body(0), "padding": padding}).encode()
    auth = {"Authorization": "Bearer " + tokens["all"], "Content-Type": "application/json"}
    response = client.post("/v1/decisions", content=big, headers=auth)
    assert response.status_code == 413
    assert str(limit) in response.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"applicant_id": "A0000001", "pad": "'
        for _ in range(limit // 1024 + 2):
            yield b"y" * 1024
        yield b'"}'

    response = client.post("/v1/decisions", content=chunks(), headers=auth)
    assert response.status_code == 413
    # A stranger's big body is refused for who it is, not read.
    assert (
        client.post("/v1/decisions", content=big, headers={"Authorization": ""}).status_code == 401
    )
    # A batch of 100 applications is well under the limit.
    batch = {"requests": [body(i) for i in range(100)]}
    assert len(json.dumps(batch)) < limit
    assert client.post("/v1/decisions/batch", json=batch).status_code == 200


def test_auth_disabled_is_explicit_and_warned(make_client, caplog):
    with caplog.at_level("WARNING"):
        http = make_client(api_auth="disabled")
    assert call(http, "POST", "/v1/decisions", body(0)).status_code == 200
    assert "DISABLED" in caplog.text


def test_jwts_from_the_configured_issuer_carry_their_scopes(make_client, tmp_path):
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def pem(key) -> bytes:
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    issuer_key, stranger_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    (tmp_path / "issuer.pem").write_bytes(pem(issuer_key))
    http = make_client(
        api_jwt_issuer="https://id.example",
        api_jwt_audience="credit-api",
        api_jwt_key_file=tmp_path / "issuer.pem",
    )
    now = int(time.time())
    claims = {
        "iss": "https://id.example",
        "aud": "credit-api",
        "sub": "loan-app-7",
        "exp": now + 300,
        "scope": "decisions",
    }

    def status(path: str, payload, key=issuer_key, algorithm="ES256", **changed) -> int:
        token = jwt.encode({**claims, **changed}, key, algorithm=algorithm)
        return call(http, "POST", path, payload, token).status_code

    assert status("/v1/decisions", body(0)) == 200
    assert status("/v1/decisions/batch", {"requests": [body(0)]}) == 403
    assert status("/v1/decisions", body(0), exp=now - 10) == 401
    assert status("/v1/decisions", body(0), iss="https://evil.example") == 401
    assert status("/v1/decisions", body(0), aud="other-api") == 401
    assert status("/v1/decisions", body(0), key=stranger_key) == 401
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert call(http, "POST", "/v1/decisions", body(0), unsigned).status_code == 401
    # `scp` as Entra ID sends it (one space-separated string) and as Okta does (a list);
    # any other shape grants nothing, and is never a 500.
    batch = {"requests": [body(0)]}
    assert status("/v1/decisions/batch", batch, scope=None, scp="decisions:batch openid") == 200
    assert status("/v1/decisions/batch", batch, scope=None, scp=["decisions:batch", 3]) == 200
    assert status("/v1/decisions", body(0), scope=None, scp=7) == 403
    assert status("/v1/decisions", body(0), scope={"decisions": True}) == 403
    # The issuer rotates its key: the file is re-read, old signatures stop working.
    rotated = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "issuer.pem").write_bytes(pem(rotated))
    os.utime(tmp_path / "issuer.pem", ns=(time.time_ns() + 10**9,) * 2)
    assert status("/v1/decisions", body(0), key=rotated) == 200
    assert status("/v1/decisions", body(0)) == 401


@settings(max_examples=25, deadline=None)
@given(size=st.integers(min_value=16, max_value=600_000))
def test_any_body_size_is_answered_or_refused_never_500(client, service, size):
    limit = service.settings.api_max_body_bytes
    head, tail = b'{"applicant_id": "A0000001", "padding": "', b'"}'
    raw = head + b"p" * (size - len(head) - len(tail)) + tail if size > 45 else b"{" * size
    response = client.post(
        "/v1/decisions", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code != 500
    assert (response.status_code == 413) == (len(raw) > limit), (len(raw), response.status_code)


def test_jwt_callers_are_told_apart_by_a_hash_and_logged_by_their_subject(make_client, tmp_path):
    import jwt

    from app.predictions.log import read_prediction_log

    (tmp_path / "secret").write_text("a-shared-hs256-secret-of-enough-length")
    http = make_client(
        api_jwt_issuer="https://id.example",
        api_jwt_key_file=tmp_path / "secret",
        api_jwt_algorithms=["HS256"],
        prediction_log_dir=tmp_path / "predictions",
    )
    # Two e-mail-like subjects that agree on their first 130 characters.
    subjects = ["x" * 130 + "@a.example", "x" * 130 + "@b.example"]
    answered = {}
    for subject in subjects:
        claims = {"iss": "https://id.example", "sub": subject, "exp": int(time.time()) + 300}
        token = jwt.encode(
            {**claims, "scope": "decisions"}, tmp_path.joinpath("secret").read_text()
        )
        headers = {"Idempotency-Key": "same-key"}
        out = call(http, "POST", "/v1/decisions", body(0), token, **headers)
        assert out.status_code == 200, out.text
        answered[subject] = out.json()["request_id"]
    # Each subject its own caller: its own Idempotency-Key namespace (two decisions here).
    assert len(set(answered.values())) == 2
    service = http.app.state.service
    service.prediction_log.flush(force=True)
    logged = (
        read_prediction_log(tmp_path / "predictions", schema_for(german()))
        .to_pandas()
        .set_index("request_id")
    )
    for subject, request_id in answered.items():
        row = logged.loc[request_id]
        assert row["caller_subject"] == subject  # in full, in the record
        assert row["caller"].startswith("jwt:") and len(row["caller"]) == 4 + 64
    assert logged.loc[list(answered.values()), "caller"].nunique() == 2


def test_a_batch_of_n_decisions_takes_n_tokens_from_its_caller(make_client, api_settings):
    from app.serving.keys import KeyFile

    with KeyFile.locked(api_settings.api_keys_file) as keys:
        token = keys.add("batcher", ["decisions:batch"])  # the settings' rate applies
        keys.write()
    http = make_client(api_rate_per_second=0.5, api_rate_burst=10)
    batch = {"requests": [body(i) for i in range(10)]}
    # The burst holds 10 decisions: one batch of 10 uses it up, the next is refused.
    assert call(http, "POST", "/v1/decisions/batch", batch, token).status_code == 200
    refused = call(http, "POST", "/v1/decisions/batch", {"requests": [body(0)]}, token)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
