"""When checks run: the CPU budget's hold, and the traffic a sampled window stands for."""

from __future__ import annotations

import os
import sys
import threading

import pandas as pd
import pytest

from app.monitoring.schedule import CHECK_NICENESS, lower_thread_priority
from tests.utils.monitoring import monitor, records


def test_a_check_holds_the_next_back_to_keep_within_its_cpu_share(make_settings):
    from app.monitoring.schedule import budget_hold
    from app.monitoring.window import window_sample_rate

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
    held.scheduler.not_before = float("inf")  # what _loop sets after a check, from budget_hold
    assert not held._due()
    assert held.status()["next_check_in_s"] > 0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def scheduler(**overrides):
    from app.monitoring.schedule import CheckSchedule, Scheduler

    fields = {"check_rows": 100, "check_seconds": 60.0, "min_rows": 10, "cpu_budget": 0.5}
    clock = Clock()
    return Scheduler(CheckSchedule(**fields | overrides), clock), clock


def test_a_check_is_due_at_check_rows_or_after_check_seconds_with_min_rows():
    plan, clock = scheduler()
    assert plan.due(100) and not plan.due(99)
    clock.now += 60
    assert plan.due(10) and not plan.due(9)


def test_failures_back_off_doubling_to_a_minute_and_a_success_resets():
    from app.monitoring.schedule import MAX_BACKOFF, MIN_BACKOFF, TICK_SECONDS

    plan, clock = scheduler()
    pauses = []
    for _ in range(7):
        plan.failed()
        pauses.append(plan.pause - TICK_SECONDS)
    assert pauses == [MIN_BACKOFF, 4.0, 8.0, 16.0, 32.0, MAX_BACKOFF, MAX_BACKOFF]
    plan.checked(cpu_seconds=3.0)  # at half a core: the next check waits 6 s
    assert plan.pause == TICK_SECONDS and plan.next_check_in() == 6.0
    assert not plan.due(1_000)
    clock.now += 6
    assert plan.due(1_000)


def test_the_schedule_is_read_from_the_settings(make_settings):
    from app.monitoring.schedule import CheckSchedule, check_schedule

    settings = make_settings(monitor_check_rows=7, monitor_cpu_budget=0.2)
    expected = CheckSchedule(7, settings.monitor_check_seconds, settings.monitor_min_rows, 0.2)
    assert check_schedule(settings) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_checks_run_at_a_lower_priority_than_the_thread_receiving_rows():
    seen = {}

    def check_thread():
        seen["lowered"] = lower_thread_priority()
        tid = threading.get_native_id()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, tid)

    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=check_thread)
    thread.start()
    thread.join()
    assert seen == {"lowered": True, "nice": max(main, CHECK_NICENESS)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main
