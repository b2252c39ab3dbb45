"""When the drift monitor checks: at `check_rows` buffered rows, or every `check_seconds` once
`min_rows` are buffered; never sooner than its CPU budget allows, and later after failures."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.config import Settings

# How often the monitor's loop wakes to ask whether a check is due.
TICK_SECONDS = 0.5
# A failed check is retried after a pause that doubles from MIN_BACKOFF up to MAX_BACKOFF
# seconds; its rows stay spooled meanwhile.
MIN_BACKOFF = 2.0
MAX_BACKOFF = 60.0
# The check thread's nice value. A check takes about a core for seconds, and on a small node
# it competes with the replicas answering requests: at nice 10 the kernel gives a busy replica
# ~9x the check's share of a contended core, so checks slow down under load instead of
# decisions. The CPU budget still bounds what checks use on average when the node is idle.
CHECK_NICENESS = 10

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckSchedule:
    """The check schedule's view of the settings."""

    check_rows: int
    check_seconds: float
    min_rows: int
    cpu_budget: float  # share of one core the checks may use on average (0 = no limit)


def check_schedule(settings: Settings) -> CheckSchedule:
    return CheckSchedule(
        check_rows=settings.monitor_check_rows,
        check_seconds=settings.monitor_check_seconds,
        min_rows=settings.monitor_min_rows,
        cpu_budget=settings.monitor_cpu_budget,
    )


def budget_hold(cpu_seconds: float, budget: float) -> float:
    """Seconds the next check waits so checks average at most `budget` of one core."""
    return cpu_seconds / budget if budget > 0 else 0.0


class Scheduler:
    """Whether a check is due, given what the last one cost and how it went."""

    def __init__(self, schedule: CheckSchedule, clock: Callable[[], float] = time.monotonic):
        self.schedule = schedule
        self._clock = clock
        self.last_check = clock()
        self.not_before = 0.0  # the CPU budget's hold on the next check (monotonic time)
        self.backoff = 0.0

    @property
    def pause(self) -> float:
        """Seconds the loop waits before asking again."""
        return TICK_SECONDS + self.backoff

    def due(self, rows: int) -> bool:
        now = self._clock()
        if now < self.not_before:
            return False
        if rows >= self.schedule.check_rows:
            return True
        waited = now - self.last_check
        return waited >= self.schedule.check_seconds and rows >= self.schedule.min_rows

    def checked(self, cpu_seconds: float) -> None:
        """A check succeeded using `cpu_seconds`: hold the next one back by the budget."""
        self.backoff = 0.0
        self.not_before = self._clock() + budget_hold(cpu_seconds, self.schedule.cpu_budget)
        self.last_check = self._clock()

    def failed(self) -> None:
        self.backoff = min(MAX_BACKOFF, max(MIN_BACKOFF, self.backoff * 2))
        self.last_check = self._clock()

    def next_check_in(self) -> float:
        """Seconds the budget still holds the next check back (0 when it does not)."""
        return round(max(0.0, self.not_before - self._clock()), 1)


def lower_thread_priority(niceness: int = CHECK_NICENESS) -> bool:
    """Renice the calling thread only (Linux: a thread id is a PRIO_PROCESS target); threads
    it starts inherit the value. False where the platform has no per-thread priority."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), niceness))
    except OSError as exc:  # a sandbox may refuse it; checks still run, at normal priority
        log.warning("drift checks keep normal priority: %s", exc)
        return False
    return True
