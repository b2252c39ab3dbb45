"""MLflow's HTTP timeout and retries, which MLflow reads from the process environment at every
request: a thread never runs its calls with another thread's values, and a model load's
deadline caps every request it makes."""

from __future__ import annotations

import os
import threading

import pytest

from app.training import tracking

KEYS = ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES")


def in_force() -> tuple[str | None, ...]:
    return tuple(os.environ.get(k) for k in KEYS)


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        # A transfer (quick=False) must run with the process's own values, never the quick ones
        # another thread set for its call.
        (lambda: tracking.failures_named("http://mlflow", "uploading", quick=False), ("77", "5")),
        # A quick call must keep its values while another thread's call ends and restores.
        (tracking.quick_failures, ("10", "0")),
    ],
    ids=["transfer-beside-quick", "quick-beside-quick"],
)
def test_two_threads_never_run_with_each_others_mlflow_timeouts(monkeypatch, second, expected):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    first_in, first_out, second_in = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, tuple[str | None, ...]] = {}

    def first() -> None:
        with tracking.quick_failures():
            first_in.set()
            # The second thread's chance to enter while this call is in flight.
            second_in.wait(timeout=1)
            seen["first"] = in_force()
        first_out.set()

    def other() -> None:
        first_in.wait(timeout=10)
        with second():
            second_in.set()
            seen["second, entering"] = in_force()
            first_out.wait(timeout=10)
            seen["second, after the first ended"] = in_force()

    threads = [threading.Thread(target=first), threading.Thread(target=other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert seen == {
        "first": ("10", "0"),
        "second, entering": expected,
        "second, after the first ended": expected,
    }
    assert in_force() == ("77", "5")


def test_a_load_deadline_caps_each_request_and_refuses_calls_past_it(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    with tracking.load_deadline(61):
        with tracking.http_policy(tracking.QUICK):
            assert in_force() == ("10", "0")
        # Every try of a download fits in what is left: 3 tries of at most 20 s.
        with tracking.http_policy(tracking.DOWNLOAD):
            assert in_force() == ("20", "2")
    with tracking.load_deadline(4.5), tracking.http_policy(tracking.QUICK):
        assert in_force() == ("4", "0")
    with (
        tracking.load_deadline(0),
        pytest.raises(tracking.RegistryError, match=r"0 s model-load deadline"),
        tracking.http_policy(tracking.QUICK),
    ):
        pass
    assert in_force() == (None, None)
    with tracking.http_policy(tracking.QUICK):  # no deadline outside a load
        assert in_force() == ("10", "0")
