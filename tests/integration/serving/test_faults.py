"""Faults while serving: a replica killed mid-stream, Redis going away and coming back, a
registry that is empty or unreachable when the app is deployed."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import pytest
import requests

from app.localservices import restart_redis
from app.predictions.schema import schema_for
from tests.utils import free_port
from tests.utils.datasets import german
from tests.utils.serving import app_config, body, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]

REPLICA_CLASS = "ServeReplica:credit:CreditDecisions"
STREAMS = 4


def _replicas() -> list:
    import ray
    from ray.util.state import list_actors

    return list_actors(
        filters=[("class_name", "=", REPLICA_CLASS), ("state", "=", "ALIVE")],
        raise_on_missing_output=False,
        address=ray.get_runtime_context().gcs_address,  # this session's Ray, not another
    )


class Traffic:
    """Client threads posting decisions back to back, as a careful client does: each request
    with its own Idempotency-Key, retried with that key when the connection fails before a
    whole answer arrived (refused, reset, or cut in the middle of the body; at most twice).
    Every outcome is kept, with the request ids answered."""

    def __init__(self, url: str, headers: dict | None = None) -> None:
        self.url = url
        self.headers = dict(headers or {})  # the service session's (its credentials)
        self.outcomes: list[str] = []
        self.started: list[float] = []  # when each request (same index) was first sent
        self.answered: list[str] = []  # request_id of every 200
        self.retried = 0
        self.replayed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._stream, args=(n,)) for n in range(STREAMS)]

    def _post(self, session: requests.Session, i: int) -> requests.Response:
        key = {"Idempotency-Key": f"kill-{i}-{time.time_ns()}"}
        for attempt in range(3):
            try:
                return session.post(
                    f"{self.url}/v1/decisions", json=body(i % 500), headers=key, timeout=30
                )
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                if attempt == 2:
                    raise
                with self._lock:
                    self.retried += 1
        raise AssertionError("unreachable")

    def _stream(self, n: int) -> None:
        session = requests.Session()
        session.headers.update(self.headers)
        i = n
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                response = self._post(session, i)
                outcome = str(response.status_code)
            except requests.RequestException as exc:
                outcome = type(exc).__name__
                response = None
            with self._lock:  # the two lists stay index-aligned
                self.outcomes.append(outcome)
                self.started.append(sent)
                if outcome == "200":
                    self.answered.append(response.json()["request_id"])
                    self.replayed += response.headers.get("Idempotent-Replayed") == "true"
            i += STREAMS

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _log_rows(served, request_ids: list[str]):
    """Prediction-log rows (not shadow) of these request ids; asserts none is logged twice."""
    from app.predictions.log import read_prediction_log

    logged = read_prediction_log(
        served.settings.prediction_log_dir, schema_for(german())
    ).to_pandas()
    logged = logged[~logged["shadow"] & logged["request_id"].isin(set(request_ids))]
    assert not logged["request_id"].duplicated().any(), "a request id logged twice"
    return logged


def _journal(log_dir) -> list:
    from app.predictions.journal import JOURNAL_DIR

    return list((log_dir / JOURNAL_DIR).glob("*.jsonl"))


def test_a_killed_replica_is_replaced_while_requests_flow(served):
    def running() -> int:
        """RUNNING replicas as Serve's controller counts them (a quick controller call)."""
        return served.replica_states().get("RUNNING", 0)

    served.deploy(replicas=2)  # returns once Serve runs two replicas and no other
    try:
        before = wait_for(lambda: len(_replicas()) == 2 and _replicas(), "two replicas", 180)
        with Traffic(served.url, served.session.headers) as traffic:
            wait_for(lambda: len(traffic.outcomes) >= 40, "traffic to flow")
            victim = before[0]
            os.kill(victim.pid, signal.SIGKILL)
            # Killed once the process is gone: a request the dying process still accepted after
            # the signal was sent (seen: 1 ms later) was in flight when it died.
            wait_for(lambda: _gone(victim.pid), "the killed replica to exit", 10, 0.001)
            killed = time.monotonic()
            killed_at = len(traffic.outcomes)
            # The moment Serve's controller no longer counts the victim as running: from then
            # on the router sends nothing to it. Polled every 50 ms, so this is at most a poll
            # after the fact (the state API, which lags by seconds, would excuse more).
            dropped_at = wait_for(
                lambda: running() < 2 and time.monotonic(),
                "Serve to mark the killed replica",
                120,
                0.05,
            )
            # A replacement starts; keep the load on until it has answered its share.
            wait_for(
                lambda: (
                    len(ids := {a.actor_id for a in _replicas()}) == 2
                    and victim.actor_id not in ids
                ),
                "a replacement replica",
                180,
            )
            wait_for(lambda: running() == 2, "the replacement to run", 180)
            wait_for(lambda: len(traffic.outcomes) >= killed_at + 80, "traffic after recovery")
        failed = [
            (sent, outcome)
            for sent, outcome in zip(traffic.started, traffic.outcomes, strict=True)
            if outcome != "200"
        ]
        failures = Counter(outcome for _, outcome in failed)
        after_kill = [round(sent - killed, 3) for sent, _ in failed if sent >= killed]
        print(
            f"replica kill: {len(traffic.outcomes)} requests, {len(failed)} failed, all in "
            f"flight when it died: {dict(failures)}; {traffic.retried} connection errors "
            f"retried with their key ({traffic.replayed} answered from the first attempt); "
            f"Serve marked the replica {dropped_at - killed:.2f} s after the kill"
        )
        # Only requests the dead replica had already taken may fail (HAProxy retries one it
        # could not connect to on the other replica); every request sent after the kill is
        # answered, and at most one in flight per client stream is lost.
        # 409: a retry whose first attempt died with the replica, holding its key's claim until
        # it expires (idempotency_claim_seconds; the answer says when to try again).
        assert set(failures) <= {"409", "500", "502", "503", "ReadTimeout"}, failures
        assert not after_kill, f"failures sent this long (s) after the kill: {after_kill}"
        assert len(failed) <= STREAMS, failures
        assert set(traffic.outcomes[-40:]) == {"200"}, failures
        # A retried request is one decision: one request id, never two prediction-log rows.
        assert len(set(traffic.answered)) == len(traffic.answered)
        # Every answer is in the prediction log, the killed replica's too: each batch reached
        # its journal before its answers left, and a live replica compacts the dead one's.
        log_dir = served.settings.prediction_log_dir
        victim_journal = f"-{victim.pid}-"
        wait_for(
            lambda: not [p for p in _journal(log_dir) if victim_journal in p.name],
            "the killed replica's journal to be compacted",
            60,
        )
        logged = _log_rows(served, traffic.answered)
        missing = set(traffic.answered) - set(logged["request_id"])
        assert not missing, f"{len(missing)} answered decisions not in the prediction log"
    finally:
        served.deploy()


def test_redis_outage_answers_503_then_recovers_by_itself(served, redis):
    assert served.post("/v1/decisions", body(0)).status_code == 200
    redis.stop()
    response = served.post("/v1/decisions", body(0))
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert "feature store unavailable" in response.json()["detail"]
    assert "Traceback" not in response.text
    assert served.get("/readyz").status_code == 503
    assert served.status()["feature_store"] == "unavailable"
    _v2_unavailable(served)

    restart_redis(redis)  # same port, same data (append-only file)
    back = time.monotonic()
    recovered = wait_for(
        lambda: served.post("/v1/decisions", body(0)).status_code == 200, "recovery", 60, 0.1
    )
    assert recovered
    elapsed = time.monotonic() - back
    assert elapsed < 10, f"decisions recovered {elapsed:.1f} s after Redis returned"
    assert served.get("/readyz").status_code == 200


def _v2_unavailable(served) -> None:
    """The Open Inference Protocol says the same: 503 over REST, UNAVAILABLE over gRPC."""
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    from tests.utils.v2 import MODEL, infer_body, triton_inputs

    rest = served.post(f"/v2/models/{MODEL}/infer", infer_body([body(0)]))
    assert rest.status_code == 503 and rest.headers["Retry-After"] == "5", rest.text
    assert "feature store unavailable" in rest.json()["error"]
    assert served.get(f"/v2/models/{MODEL}/ready").status_code == 503
    metadata = {"authorization": f"Bearer {served.token}", "application": served.name}
    with triton_grpc.InferenceServerClient(served.grpc) as client:
        with pytest.raises(InferenceServerException) as error:
            client.infer(MODEL, triton_inputs(triton_grpc, [body(0)]), headers=metadata)
        assert error.value.status() == "StatusCode.UNAVAILABLE"
        assert "feature store unavailable" in error.value.message()
        assert not client.is_model_ready(MODEL, headers=metadata)


def _answer(url: str) -> requests.Response | None:
    # Serve answers 404 until the new application's route exists, then holds requests until
    # its replica is up (longer than a client timeout on a busy machine).
    try:
        response = requests.get(url, timeout=30)
    except requests.Timeout:
        return None
    return response if response.status_code != 404 else None


def test_empty_or_unreachable_registry_at_deploy_answers_503_naming_it(served, tmp_path):
    # Two more applications beside the live one: one whose registry holds no model, one whose
    # MLflow server is down (nothing listens on its port) when it is deployed.
    empty = {**served.overrides, "data_dir": str(tmp_path / "empty")}
    empty["feast_dir"] = str(served.settings.feast_dir)
    down_uri = f"http://127.0.0.1:{free_port()}"
    down = {**served.overrides, "mlflow_tracking_uri": down_uri}
    served.deploy(extra_apps=(app_config("empty", empty, {}), app_config("nomlflow", down, {})))
    base = served.url.rsplit("/", 1)[0]
    try:
        for name, expected in (("empty", "champion"), ("nomlflow", f"{down_uri} is unreachable")):
            url = f"{base}/{name}"
            ready = wait_for(lambda url=url: _answer(url + "/readyz"), f"the {name} app", 180)
            # Open: the status only. What is wrong is for monitoring:read callers.
            assert ready.status_code == 503 and ready.json() == {"status": "unavailable"}
            # A new connection: a kept-alive one may still reach the HAProxy process from
            # before this deploy's reload, whose routes lack the new apps (404).
            session = served.new_session()
            status = session.get(url + "/v1/status", timeout=30).json()
            assert expected in status["detail"], status
            response = session.post(url + "/v1/decisions", json=body(0), timeout=30)
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "5"
            error_id = response.json()["error_id"]
            assert response.json()["detail"] == f"model unavailable (error id {error_id})"
            assert "Traceback" not in response.text and "127.0.0.1" not in response.text
    finally:
        served.deploy()  # the config without the extra apps removes them
    wait_for(
        lambda: requests.get(f"{base}/empty/healthz", timeout=30).status_code == 404,
        "the extra apps to be removed",
    )


def _gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped by its raylet counts as exited)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
