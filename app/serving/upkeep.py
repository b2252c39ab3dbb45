"""A replica's upkeep, off the request path: registry aliases -> loaded models, the online-store
connection, prediction-log flushes and the drift-monitor feed. Plain asyncio, no Ray Serve.

Requests only ever read `models` and `reader`, each replaced by one assignment, so a request in
flight keeps the set it started with; a failure here leaves what is loaded in service and is
reported on /readyz (`model_error`, `store_error`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from app.config import Settings
from app.serving.models import ModelSet, ModelSource, refresh_models
from app.serving.monitorfeed import MonitorFeed
from app.serving.predlog import PredictionLog
from app.serving.routing import RoutingConfig

log = logging.getLogger(__name__)

STEP_SECONDS = 0.25


def open_online_reader(settings: Settings):
    """The default reader: Feast is imported here, on the upkeep thread, not at import."""
    from app.features.online import open_reader

    return open_reader(settings)


class Upkeep:
    def __init__(
        self,
        settings: Settings,
        source: ModelSource,
        reader_factory: Callable[[Settings], Any],
        prediction_log: PredictionLog,
        metrics,
        monitor_feed: MonitorFeed,
    ) -> None:
        self.settings = settings
        self.source = source
        self.reader_factory = reader_factory
        self.prediction_log = prediction_log
        self.metrics = metrics
        self.monitor_feed = monitor_feed
        self.models = ModelSet()
        self.model_error: str | None = "models not loaded yet"
        self.reader = None
        self.store_error: str | None = "feature store not connected yet"
        # Its own thread, so a slow MLflow or disk never stalls decisions.
        self.executor: Executor = ThreadPoolExecutor(1, thread_name_prefix="upkeep")
        self._last_poll = 0.0
        self._last_flush = time.monotonic()

    def recheck_aliases(self) -> None:
        """Look at the registry on the next step (a new config asks for it)."""
        self._last_poll = 0.0

    def load_models(self) -> None:
        try:
            models = refresh_models(self.models, self.source)
        except Exception as exc:  # keep serving what is loaded; report it on /readyz
            self.model_error = f"model registry: {type(exc).__name__}: {exc}"[:500]
            log.warning("%s", self.model_error)
            return
        if models.versions() != self.models.versions():
            log.info("models now %s (were %s)", models.versions(), self.models.versions())
        self.models = models
        self.model_error = None if models.champion else "no model holds the champion alias"

    def connect_store(self) -> None:
        try:
            self.reader = self.reader_factory(self.settings)
            self.store_error = None
        except Exception as exc:
            self.store_error = f"feature store: {type(exc).__name__}: {exc}"[:500]
            log.warning("%s", self.store_error)

    def flush_log(self) -> None:
        before = self.prediction_log.errors
        self.prediction_log.flush()
        if self.prediction_log.errors > before:
            self.metrics.log_failures.inc()
        self.metrics.log_pending.set(self.prediction_log.pending)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self.load_models)
        await loop.run_in_executor(self.executor, self.connect_store)

    async def step(self, config: RoutingConfig) -> None:
        """One round: aliases when due, a reconnect when disconnected, flush, monitor feed."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        poll = config.alias_poll_seconds
        if (poll and now - self._last_poll >= poll) or self.models.champion is None:
            self._last_poll = now
            await loop.run_in_executor(self.executor, self.load_models)
        if self.reader is None:
            await loop.run_in_executor(self.executor, self.connect_store)
        if now - self._last_flush >= config.log_flush_seconds:
            self._last_flush = now
            await loop.run_in_executor(self.executor, self.flush_log)
        if self.monitor_feed.pending:
            await self.monitor_feed.send(self.executor, now)

    async def run(self, config: Callable[[], RoutingConfig]) -> None:
        """`step` forever, with the config in force at each round."""
        while True:
            try:
                await self.step(config())
            except Exception:  # the loop must outlive any single failure
                log.exception("upkeep step failed")
            await asyncio.sleep(STEP_SECONDS)
