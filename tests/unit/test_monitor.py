"""The drift monitor's bookkeeping without Ray: spool recovery, bounds, trigger rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from app.config import load_settings
from app.monitoring.drift import DriftResult
from app.monitoring.jobs import settings_env
from app.monitoring.monitor import DriftMonitor, window_schema
from app.training.reference import Reference


def records(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "request_id": f"r{start + i}",
            "logged_at": datetime(2026, 11, 26, tzinfo=UTC),
            "applicant_id": f"S{start + i:07d}",
            "shadow": False,
            "model_version": "1",
            "probability_of_default": 0.1,
            "credit_amount": 1000.0 + i,
            "purpose": "radio/television",
        }
        for i in range(n)
    ]


class Jobs:
    """Records submissions; `state` is what the Jobs API would report for every job."""

    def __init__(self, settings) -> None:
        self.submitted: list[str] = []
        self.state = "RUNNING"

    def submit(self, reason: str) -> str:
        self.submitted.append(reason)
        return f"job-{len(self.submitted)}"

    def status(self, job_id: str) -> str:
        return self.state


@pytest.fixture
def settings(make_settings):
    return make_settings(monitor_max_buffer_rows=250, retrain_after_checks=2)


def monitor(settings, **kwargs) -> DriftMonitor:
    return DriftMonitor(settings, jobs_factory=Jobs, start=False, **kwargs)


def result(drift: bool) -> DriftResult:
    return DriftResult(
        checked_at="2026-11-26T00:00:00+00:00",
        rows=500,
        rows_used=500,
        reference_rows=600,
        dataset_drift=drift,
        drifted_features=["credit_amount"] if drift else [],
        drift_share=0.05 if drift else 0.0,
        features=[],
        prediction=None,
    )


REFERENCE = Reference(pd.DataFrame(), [], [], "1", "run")


def test_a_restarted_monitor_resumes_with_every_spooled_row(settings):
    first = monitor(settings)
    assert first.submit(records(100)) == 100 and first.submit(records(50, 100)) == 50
    again = monitor(settings)  # what Ray's restart does: a new process, same folder
    assert (again.recovered, again.status()["buffered_rows"]) == (150, 150)
    kept = sorted(r for _, t in again._batches for r in t.column("request_id").to_pylist())
    assert kept == sorted(f"r{i}" for i in range(150))
    assert again._batches[0][1].schema == window_schema()


def test_the_buffer_is_bounded_and_drops_the_oldest(settings):
    m = monitor(settings)
    for start in range(0, 400, 100):
        m.submit(records(100, start))
    status = m.status()
    assert (status["buffered_rows"], status["dropped_rows"]) == (200, 200)
    assert len(list(m.spool.glob("*.arrow"))) == 2  # dropped batches leave the disk too


def test_a_torn_spool_file_is_set_aside(settings):
    m = monitor(settings)
    m.submit(records(10))
    (m.spool / "00000000000000000001-bad.arrow").write_bytes(b"not arrow")
    again = monitor(settings)
    assert again.recovered == 10
    assert list(m.spool.glob("*.bad"))


def test_retraining_fires_after_k_drifted_checks_and_never_while_its_job_runs(settings):
    m = monitor(settings)
    assert m._after_check(result(True), REFERENCE) is None  # 1 of 2
    assert m._after_check(result(False), REFERENCE) is None  # the run is broken
    assert m._after_check(result(True), REFERENCE) is None
    fired = m._after_check(result(True), REFERENCE)
    assert fired["action"] == "submitted" and fired["job"] == "job-1"
    assert "2 consecutive checks" in fired["reason"] and "credit_amount" in fired["reason"]
    m._after_check(result(True), REFERENCE)
    held = m._after_check(result(True), REFERENCE)
    assert held["action"] == "suppressed" and held["job"] == "job-1"
    assert m._jobs.submitted == [fired["reason"]]
    m._jobs.state = "SUCCEEDED"  # the job is done: drift that still holds may fire again
    again = m._after_check(result(True), REFERENCE)
    assert again["action"] == "submitted" and again["job"] == "job-2"
    logged = [json.loads(line) for line in (m.root / "triggers.jsonl").read_text().splitlines()]
    assert [e["action"] for e in logged] == ["submitted", "suppressed", "ended", "submitted"]
    assert logged[2] | {"at": None} == {
        "at": None,
        "action": "ended",
        "job": "job-1",
        "status": "SUCCEEDED",
    }


@pytest.mark.parametrize("ended", ["SUCCEEDED", "FAILED", "STOPPED", "LOST"])
def test_the_retraining_job_is_cleared_however_it_ends(settings, ended):
    m = monitor(settings)
    m._after_check(result(True), REFERENCE)
    assert m._after_check(result(True), REFERENCE)["action"] == "submitted"
    m._jobs.state = ended
    m._settle_active_job()  # what every check does first
    assert m.state.active_job is None and m.status()["active_job"] is None
    m._after_check(result(True), REFERENCE)
    assert m._after_check(result(True), REFERENCE)["job"] == "job-2"


def test_a_jobs_api_that_cannot_be_asked_keeps_the_job_active(settings):
    m = monitor(settings)
    m._after_check(result(True), REFERENCE)
    m._after_check(result(True), REFERENCE)

    def unreachable(job_id):
        raise ConnectionError("dashboard at 127.0.0.1:8265 refused the connection")

    m._jobs.status = unreachable
    m._after_check(result(True), REFERENCE)
    held = m._after_check(result(True), REFERENCE)
    assert held["action"] == "suppressed" and held["status"] == "unknown (ConnectionError)"
    assert m._jobs.submitted == [m.state.triggers[0]["reason"]]  # never a second job


def test_the_jobs_api_saying_it_does_not_know_the_job_is_lost(make_settings):
    from app.monitoring.jobs import LOST, RayJobs

    class Client:
        def get_job_status(self, job_id):
            raise RuntimeError(f"Request failed with status code 404: Job {job_id} not found.")

    jobs = RayJobs(make_settings())
    jobs._client = Client()
    assert jobs.status("credit-retrain-1") == LOST

    class Down:
        def get_job_status(self, job_id):
            raise RuntimeError("Request failed with status code 503: unavailable.")

    jobs._client = Down()
    with pytest.raises(RuntimeError):
        jobs.status("credit-retrain-1")


def test_no_trigger_when_retraining_is_off(make_settings):
    m = monitor(make_settings(retrain_after_checks=0))
    assert all(m._after_check(result(True), REFERENCE) is None for _ in range(5))


def test_the_job_gets_the_settings_back_from_its_environment(make_settings, monkeypatch):
    settings = make_settings(redis_password="hidden", monitor_check_rows=7, online_store="redis")
    env = settings_env(settings)
    assert "CREDIT_REDIS_PASSWORD" not in env  # secrets come from the cluster, not the job
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rebuilt = load_settings(_env_file=None)
    assert rebuilt.model_dump(exclude={"redis_password"}) == settings.model_dump(
        exclude={"redis_password"}
    )


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.count += n


def test_under_load_the_feed_sends_a_sample_that_carries_its_rate(make_settings):
    import random

    from app.serving.monitorfeed import MonitorFeed

    now = [0.0]
    feed = MonitorFeed(
        make_settings(monitor_max_rows_per_second=100),
        Counter(),
        draw=random.Random(3).random,
        clock=lambda: now[0],
    )
    # 50 rows a second: under the limit, every row goes, at rate 1.
    for second in range(3):
        now[0] = float(second)
        feed.offer(records(50))
    assert len(feed._rows) == 150 and {r["sample_rate"] for r in feed._rows} == {1.0}

    # A burst of 400 rows in a second goes whole: the rate is taken over 5 s.
    feed._rows.clear()
    now[0] = 10.0
    feed.offer(records(400))
    assert len(feed._rows) == 400

    # 1,000 rows a second for 10 s: sampled down, each row saying what it stands for.
    feed._rows.clear()
    for tick in range(100):
        now[0] = 20.0 + tick / 10
        feed.offer(records(100))
    assert 1_000 <= len(feed._rows) <= 2_500  # of 10,000
    late = [r["sample_rate"] for r in feed._rows[-50:]]
    assert all(0.09 <= rate <= 0.11 for rate in late)


def test_a_check_holds_the_next_back_to_keep_within_its_cpu_share(make_settings):
    from app.monitoring.monitor import budget_hold, window_sample_rate

    assert budget_hold(2.0, 0.05) == pytest.approx(40.0)
    assert budget_hold(2.0, 0) == 0.0
    # 100 rows at rate 1 and 100 at rate 0.1 stand for 1,100 answered rows.
    window = pd.DataFrame({"sample_rate": [1.0] * 100 + [0.1] * 100})
    assert window_sample_rate(window) == pytest.approx(200 / 1100, abs=1e-4)

    held = monitor(make_settings(monitor_check_rows=10, monitor_min_rows=10))
    held.submit(records(20))  # rows without a rate stand for themselves
    held.submit([{**r, "sample_rate": 0.25} for r in records(10, start=20)])
    assert held.status()["buffered_represented_rows"] == 20 + 40
    assert held._due()
    held._not_before = float("inf")  # what _loop sets after a check, from budget_hold
    assert not held._due()
    assert held.status()["next_check_in_s"] > 0
