"""A hung online store (accepts, never answers) against the decision service: 503 with
Retry-After in bounded time, no request waits on it again until it answers, the health check
fails once it has been down too long, and decisions come back by themselves. The real service
and API in process, reading the package's real Redis through a proxy that can hang."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from app.predictions.schema import schema_for
from tests.utils import wait_for
from tests.utils.datasets import german
from tests.utils.netfault import HangingProxy
from tests.utils.serving import body

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]

# The decision path's reader gives up after 1 s; a whole request may take a little more.
BOUND_SECONDS = 2.5


def timed(http: TestClient, method: str, path: str, **kwargs):
    started = time.monotonic()
    response = http.request(method, path, **kwargs)
    return response, time.monotonic() - started


def test_a_hung_redis_gives_503_within_the_bound_and_decisions_recover(served, redis, tmp_path):
    from app.serving.api import build_api
    from app.serving.service import DecisionService

    proxy = HangingProxy(redis.port)
    settings = served.settings.model_copy(
        update={
            "redis_port": proxy.port,
            "prediction_log_dir": tmp_path / "predictions",
            "serve_store_unhealthy_seconds": 2.0,
            "monitor_enabled": False,
        }
    )
    service = DecisionService(settings)
    try:
        with TestClient(build_api(service), headers=served.session.headers) as http:
            http.portal.call(service.start)
            upkeep = http.portal.start_task_soon(service.maintain)
            try:
                hang_and_recover(http, service, proxy, settings)
            finally:
                upkeep.cancel()  # else the client waits for the endless loop on exit
    finally:
        service.close()
        proxy.close()


def hang_and_recover(http: TestClient, service, proxy: HangingProxy, settings) -> None:
    """Answering, then hung, then back: the outcome and the time of each request."""
    assert http.post("/v1/decisions", json=body(0)).status_code == 200

    proxy.hang()
    first, took = timed(http, "POST", "/v1/decisions", json=body(1))
    assert first.status_code == 503, first.text
    assert took < BOUND_SECONDS, took
    seen = {"first 503": took}
    assert first.headers["Retry-After"] == str(settings.serve_retry_after_seconds)
    assert "feature store" in first.json()["detail"]
    # Until a probe gets an answer, requests do not wait on the store at all.
    again, took = timed(http, "POST", "/v1/decisions", json=body(2))
    assert again.status_code == 503 and took < 0.5, took
    seen["next 503"] = took
    ready, took = timed(http, "GET", "/readyz")
    assert ready.status_code == 503 and took < BOUND_SECONDS, took
    seen["/readyz 503"] = took
    assert ready.json() == {"status": "unavailable"}  # open: nothing more to strangers
    assert http.get("/v1/status").json()["feature_store"] == "unavailable"
    assert http.get("/healthz").status_code == 200  # the process itself is alive
    problem = wait_for(service.health_problem, "the health check to fail", 10, 0.1)
    assert "online store unavailable" in problem

    proxy.resume()
    resumed = time.monotonic()
    wait_for(
        lambda: http.post("/v1/decisions", json=body(3)).status_code == 200,
        "decisions to come back by themselves",
        15,
        0.2,
    )
    seen["back to 200"] = time.monotonic() - resumed
    assert service.health_problem() is None
    assert http.get("/v1/status").json()["feature_store"] == "connected"
    print("hung Redis, seconds: " + ", ".join(f"{k} {v:.3f}" for k, v in seen.items()))


def test_redis_stalling_after_a_keyed_decision_never_decides_it_again(served, redis, tmp_path):
    """The key store (the same Redis, through its own proxy) hangs after the decision is
    journaled and before its answer is stored; the client retries, as docs/cluster.md tells
    it to, past the claim time. The retries get 503 or 409 while the answer is unknown, then
    the first answer: never a second decision, and one prediction-log record."""
    from app.predictions.log import read_prediction_log
    from app.serving.api import build_api
    from app.serving.keystore import open_idempotency
    from app.serving.service import DecisionService

    keys_proxy = HangingProxy(redis.port)
    settings = served.settings.model_copy(
        update={
            "prediction_log_dir": tmp_path / "predictions",
            "idempotency_claim_seconds": 1.0,
            "monitor_enabled": False,
        }
    )
    via_proxy = settings.model_copy(update={"redis_port": keys_proxy.port})
    service = DecisionService(settings, idempotency_factory=lambda _: open_idempotency(via_proxy))
    journal = service.prediction_log.append

    def append_then_hang(records):  # the stall comes right after the decision is on disk
        done = journal(records)
        keys_proxy.hang()
        return done

    service.prediction_log.append = append_then_hang
    headers = {**served.session.headers, "Idempotency-Key": "stall-1"}
    try:
        with TestClient(build_api(service), headers=headers) as http:
            http.portal.call(service.start)
            first, took = timed(http, "POST", "/v1/decisions", json=body(7))
            assert first.status_code == 200, first.text  # decided and journaled: answered
            service.prediction_log.append = journal
            seen = [timed(http, "POST", "/v1/decisions", json=body(7))]  # still hung
            keys_proxy.resume()
            time.sleep(settings.idempotency_claim_seconds)  # let the claim time pass
            seen.append(timed(http, "POST", "/v1/decisions", json=body(7)))
            replay = wait_for(
                lambda: (r := http.post("/v1/decisions", json=body(7))).status_code == 200 and r,
                "the first answer to be replayed",
                15,
                0.2,
            )
        service.prediction_log.flush(force=True)
        logged = read_prediction_log(settings.prediction_log_dir, schema_for(german())).to_pandas()
    finally:
        service.close()
        keys_proxy.close()
    for retry, _ in seen:  # any 200 is the first answer again, never a new decision
        assert retry.status_code != 200 or retry.json() == first.json(), retry.text
    assert {r.status_code for r, _ in seen} <= {200, 409, 503}
    assert all(t < BOUND_SECONDS for _, t in seen), [t for _, t in seen]
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"
    keyed = logged[logged["idempotency_key"] == "stall-1"]
    assert keyed["request_id"].tolist() == [first.json()["request_id"]]
    assert took < BOUND_SECONDS, took  # the answer was not held up by the hung store
