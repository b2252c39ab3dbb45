"""A replica's upkeep, off the request path: registry aliases -> loaded models, the online-store
connection, prediction-log flushes and the drift-monitor feed. Plain asyncio, no Ray Serve.

Requests only ever read `models` and `reader`, each replaced by one assignment, so a request in
flight keeps the set it started with; a failure here leaves what is loaded in service and is
reported on /v1/status (`model_error`, `store_error`).

Model loads run on a thread of their own, one at a time, and the loop never waits for one: it
starts a load and looks at it on later rounds, so the store probe, reconnects, log flushes and
the monitor feed keep their pace however long MLflow takes. Each load ends by
`model_load_timeout_seconds` (every MLflow request it makes is cut to what is left).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from app.config import Settings
from app.predictions.log import PredictionLog
from app.serving.models import IncompatibleModel, ModelSet, refresh_models
from app.serving.monitorfeed import MonitorFeed
from app.serving.routing import RoutingConfig
from app.training.source import ModelSource
from app.training.tracking import RegistryError, load_deadline

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
        self.dataset = settings.load_dataset()  # what a loaded version must be fed by
        self.source = source
        self.reader_factory = reader_factory
        self.prediction_log = prediction_log
        self.metrics = metrics
        self.monitor_feed = monitor_feed
        self.models = ModelSet()
        self.model_error: str | None = "models not loaded yet"
        # "ok" once MLflow answered, "unavailable" while it does not (the loaded models serve).
        self.registry: str | None = None
        self.reader = None
        self.store_error: str | None = "feature store not connected yet"
        # Set while the store fails: requests get 503 at once (not a timeout each) until a
        # probe here succeeds; past serve_store_unhealthy_seconds the health check fails.
        self.store_down_since: float | None = None
        # Its own thread, so a slow disk or store never stalls decisions.
        self.executor: Executor = ThreadPoolExecutor(1, thread_name_prefix="upkeep")
        # Model loads apart from it, so a hung MLflow never holds up the store or the feed.
        self.loader: Executor = ThreadPoolExecutor(1, thread_name_prefix="model-load")
        self._load: Future[ModelSet] | None = None
        self._load_started = 0.0
        self._load_overdue = False
        self._last_poll = 0.0
        self._last_flush = time.monotonic()

    def recheck_aliases(self) -> None:
        """Look at the registry on the next step (a new config asks for it)."""
        self._last_poll = 0.0

    def load_models(self) -> None:
        """The versions the aliases name now, loaded on the calling thread. Any failure leaves
        the loaded set in service: an unreachable registry is never "no champion", a refused
        version never replaces one."""
        try:
            models = self._refresh()
        except Exception as exc:  # keep serving what is loaded; report it (model_error)
            self._load_failed(exc)
            return
        self._loaded(models)

    def _refresh(self) -> ModelSet:
        with load_deadline(self.settings.model_load_timeout_seconds):
            return refresh_models(self.models, self.source, self.dataset)

    def _loaded(self, models: ModelSet) -> None:
        self.registry = "ok"
        if models.versions() != self.models.versions():
            log.info("models now %s (were %s)", models.versions(), self.models.versions())
            self._note_traffic(models)
        self.models = models
        self.model_error = None if models.champion else "no model holds the champion alias"

    def _load_failed(self, exc: Exception) -> None:
        self.model_error = self._failure(exc)
        log.warning("%s", self.model_error)

    def _begin_load(self) -> Future[ModelSet]:
        """A load on the loader thread; `_settle_load` takes its outcome on a later round."""
        self._load = self.loader.submit(self._refresh)
        self._load_started = time.monotonic()
        self._load_overdue = False
        return self._load

    def _settle_load(self) -> None:
        """The outcome of the load in flight, if it is over; past its deadline, say so."""
        load = self._load
        if load is None:
            return
        if not load.done():
            limit = self.settings.model_load_timeout_seconds
            if not self._load_overdue and time.monotonic() - self._load_started >= limit:
                # Its MLflow calls end by the deadline; anything else it waits on (a disk, a
                # locked database) keeps the loader busy, and the next load waits for it.
                self._load_overdue = True
                self._load_failed(
                    RegistryError(
                        f"the model load did not finish within {limit:g} s "
                        "(model_load_timeout_seconds)"
                    )
                )
            return
        self._load = None
        try:
            models = load.result()
        except Exception as exc:
            self._load_failed(exc)
            return
        self._loaded(models)

    def _failure(self, exc: Exception) -> str:
        from app.training.artifacts import ArtifactRefused

        champion = self.models.champion
        serving = f" (serving the loaded champion v{champion.version})" if champion else ""
        if isinstance(exc, ArtifactRefused | IncompatibleModel):  # MLflow answered; not usable
            self.registry = "ok"
            return f"model refused: {exc}{serving}"[:500]
        if isinstance(exc, RegistryError | OSError):
            self.registry = "unavailable"
            return f"model registry unreachable: {type(exc).__name__}: {exc}"[:440] + serving
        return f"model load failed: {type(exc).__name__}: {exc}"[:440] + serving

    def _note_traffic(self, models: ModelSet) -> None:
        """A registry `traffic` tag moves live traffic without a redeploy: say so in the log."""
        challenger = models.challenger
        if challenger is not None and challenger.traffic_note:
            log.warning("challenger v%s: %s", challenger.version, challenger.traffic_note)

    def connect_store(self) -> None:
        try:
            self.reader = self.reader_factory(self.settings)
        except Exception as exc:
            self.store_failed(f"feature store: {type(exc).__name__}: {exc}")
            return
        self.store_error, self.store_down_since = None, None

    def store_failed(self, detail: str) -> None:
        """A read or connect failed or timed out (any thread may call this)."""
        if self.store_down_since is None:
            self.store_down_since = time.monotonic()
            log.warning("%s", detail[:500])
        self.store_error = detail[:500]

    def probe_store(self) -> None:
        """While the store is down: one round trip (1 s timeout); success lifts the 503s."""
        try:
            self.reader.probe()
        except Exception as exc:
            self.store_failed(f"feature store unavailable: {type(exc).__name__}: {exc}")
            return
        log.info("online store answers again")
        self.store_error, self.store_down_since = None, None

    def flush_log(self) -> None:
        """Ask the log's own thread to compact, and report on it: no disk work here, so a
        slow or failing disk never holds up alias polling."""
        self.prediction_log.request_flush()
        errors, dropped = self.prediction_log.take_counts()
        if errors:
            self.metrics.log_failures.inc(errors)
        if dropped:
            self.metrics.log_dropped.inc(dropped)
        self.metrics.log_pending.set(self.prediction_log.held)

    async def start(self) -> None:
        """The first load, waited for until its deadline at most (a replica without a
        champion answers 503 and goes on loading in the background), then the store."""
        loop = asyncio.get_running_loop()
        first = asyncio.wrap_future(self._begin_load())
        # Its outcome is taken from the load itself (_settle_load), whenever it arrives.
        first.add_done_callback(lambda done: done.cancelled() or done.exception())
        # asyncio.wait, not wait_for: running out of time must not cancel the load.
        await asyncio.wait([first], timeout=self.settings.model_load_timeout_seconds)
        self._settle_load()
        await loop.run_in_executor(self.executor, self.connect_store)

    async def step(self, config: RoutingConfig) -> None:
        """One round: aliases when due, a reconnect when disconnected, flush, monitor feed.
        A load in flight is only looked at: its outcome is taken on the round it is over."""
        loop = asyncio.get_running_loop()
        self._settle_load()
        now = time.monotonic()
        poll = config.alias_poll_seconds
        due = (poll and now - self._last_poll >= poll) or self.models.champion is None
        if due and self._load is None:
            self._last_poll = now
            self._begin_load()
        if self.reader is None:
            await loop.run_in_executor(self.executor, self.connect_store)
        elif self.store_down_since is not None:
            await loop.run_in_executor(self.executor, self.probe_store)
        if now - self._last_flush >= config.log_flush_seconds:
            self._last_flush = now
            self.flush_log()
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
