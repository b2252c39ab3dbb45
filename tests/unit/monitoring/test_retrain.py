"""Drift-triggered retraining: when the trigger fires, and never while its job runs; the Ray Jobs
API client and the settings a job gets."""

from __future__ import annotations

import json

import pytest

from app.config import load_settings
from app.monitoring.retrain import settings_env
from tests.utils.monitoring import REFERENCE, monitor, result


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
    from app.monitoring.retrain import LOST, RayJobs

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


def test_a_failed_submission_is_recorded_and_leaves_no_active_job(tmp_path):
    from app.monitoring.retrain import Retrainer, RetrainPolicy
    from app.monitoring.store import MonitorState

    class Down:
        def submit(self, reason):
            raise ConnectionError("refused")

    state = MonitorState()
    retrainer = Retrainer(RetrainPolicy(after_checks=1), state, Down, tmp_path / "t.jsonl")
    event = retrainer.after_check(result(True), "3")
    assert event["action"] == "failed" and event["error"] == "ConnectionError: refused"
    assert "champion v3" in event["reason"]
    assert state.active_job is None and state.consecutive_drift == 1
    assert json.loads((tmp_path / "t.jsonl").read_text())["action"] == "failed"


def test_a_miscalibrated_grade_asks_for_retraining_under_the_same_suppression(settings):
    m = monitor(settings)
    reason = "calibration: champion grade 3 (10.0% - 20.0%): under-predicted"
    first = m.request_retraining(reason)
    assert (first["action"], first["job"], first["reason"]) == ("submitted", "job-1", reason)
    # Its job runs: a second request, or drift, is recorded as suppressed, never submitted.
    assert m.request_retraining(reason)["action"] == "suppressed"
    m._after_check(result(True), REFERENCE)
    assert m._after_check(result(True), REFERENCE)["action"] == "suppressed"
    assert m._jobs.submitted == [reason]
    # The state survives the actor: a restarted monitor knows the job is running.
    saved = json.loads((m.root / "state.json").read_text())
    assert saved["active_job"] == "job-1"
