"""Answered decisions' rows to the drift monitor actor, in batches a request never waits for."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from app.config import Settings
from app.monitoring.window import SAMPLE_RATE, window_schema

log = logging.getLogger(__name__)

MAX_BUFFERED_ROWS = 20_000
MAX_CALLS_IN_FLIGHT = 8
RATE_WINDOW_SECONDS = 5.0


class MonitorFeed:
    """Rows buffered here (bounded, drops counted) and sent from the replica's upkeep loop at
    most once a second or every 500 rows; rows a dead monitor never took are sent again.

    Above `monitor_max_rows_per_second` answered rows, a random sample at that rate is kept,
    each row carrying the rate it was kept at: the monitor's cost stays flat under load and
    its results say what share of traffic they saw.
    """

    def __init__(
        self,
        settings: Settings,
        dropped_counter,
        draw: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._dropped = dropped_counter
        self._draw = draw
        self._clock = clock
        self._offered: deque[tuple[float, int]] = deque()
        self._offered_rows = 0  # the sum of the rows in _offered
        self.monitor = None
        self._rows: list[dict[str, Any]] = []
        self._calls: list[tuple[Any, list[dict[str, Any]]]] = []
        self._next_try = 0.0
        self._last_send = time.monotonic()
        self._fields = [n for n in window_schema(settings.load_dataset()).names if n != SAMPLE_RATE]

    @property
    def pending(self) -> bool:
        return bool(self._rows or self._calls)

    def sample_rate(self, rows: int) -> float:
        """The share of rows to keep now, given `rows` more were just answered."""
        limit = self.settings.monitor_max_rows_per_second
        now = self._clock()
        self._offered.append((now, rows))
        self._offered_rows += rows  # kept as a sum: the window holds a batch per request
        while self._offered and now - self._offered[0][0] > RATE_WINDOW_SECONDS:
            self._offered_rows -= self._offered.popleft()[1]
        if not limit:
            return 1.0
        # Over a fixed window: a short burst (the main job's sample decisions) goes whole,
        # sustained load above the limit is sampled down to it.
        return min(1.0, limit * RATE_WINDOW_SECONDS / self._offered_rows)

    def offer(self, rows: list[dict[str, Any]]) -> None:
        """Answered decisions' records, cut to what a drift check reads (who asked stays in
        the prediction log): queue them, or a sample of them under load."""
        rate = self.sample_rate(len(rows))
        fields = self._fields
        self.queue(
            [
                {**{k: row.get(k) for k in fields}, SAMPLE_RATE: rate}
                for row in rows
                if rate >= 1.0 or self._draw() < rate
            ]
        )

    def queue(self, rows: list[dict[str, Any]], front: bool = False) -> None:
        self._rows = [*rows, *self._rows] if front else self._rows + rows
        overflow = len(self._rows) - MAX_BUFFERED_ROWS
        if overflow > 0:
            del self._rows[:overflow]
            self._dropped.inc(overflow)

    async def send(self, executor, now: float) -> None:
        """Collect finished calls (re-queueing failed ones), then send what is buffered."""
        if self._calls:
            await self._collect()
        if not self._rows:
            return
        if now - self._last_send < 1.0 and len(self._rows) < 500:
            return
        if self.monitor is None:
            if now < self._next_try:
                return
            self._next_try = now + 10.0
            loop = asyncio.get_running_loop()
            try:
                self.monitor = await loop.run_in_executor(executor, self._get_or_create)
            except Exception as exc:
                log.warning("drift monitor unavailable: %s", exc)
                return
        if len(self._calls) >= MAX_CALLS_IN_FLIGHT:  # the monitor is behind: keep buffering
            return
        rows, self._rows = self._rows, []
        self._last_send = now
        self._calls.append((self.monitor.submit.remote(rows), rows))

    async def _collect(self) -> None:
        import ray

        refs = [ref for ref, _ in self._calls]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        finished = set(done)
        kept = []
        for ref, rows in self._calls:
            if ref not in finished:
                kept.append((ref, rows))
                continue
            try:
                await ref
            except Exception as exc:  # monitor died before taking them: try again later
                log.warning("drift monitor call failed (%s); rows re-queued", exc)
                self.monitor = None
                self.queue(rows, front=True)
        self._calls = kept

    def _get_or_create(self):
        from app.monitoring.monitor import get_or_create_monitor

        return get_or_create_monitor(self.settings)

    def find(self):
        """The running monitor (never creates one); raises outside Ray."""
        import ray

        from app.monitoring.monitor import find_monitor

        # Outside a Ray worker (the service in-process) a lookup would start a local Ray.
        if not ray.is_initialized():
            raise LookupError("not running under Ray")
        return find_monitor(self.settings)
