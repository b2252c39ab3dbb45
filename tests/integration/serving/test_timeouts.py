"""A hung online store (accepts, never answers) against the decision service: 503 with
Retry-After in bounded time, no request waits on it again until it answers, the health check
fails once it has been down too long, and decisions come back by themselves. The real service
and API in process, reading the package's real Redis through a proxy that can hang."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.utils import wait_for
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
    assert ready.json()["feature_store"] == "unavailable"
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
    assert http.get("/readyz").json()["feature_store"] == "connected"
    print("hung Redis, seconds: " + ", ".join(f"{k} {v:.3f}" for k, v in seen.items()))
