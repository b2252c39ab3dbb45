"""The decision service without Ray Serve: features, A/B routing, scoring, reasons, logging.

The Serve deployment (decisions.py) is this class plus request batching and its replica's
upkeep; the HTTP routes (api.py) call it. Tests run it in-process, without Ray.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.config import Settings
from app.serving.decide import (
    Features,
    Outcome,
    Scored,
    Unavailable,
    decide_batch,
    fetch_features,
    shadow_records,
)
from app.serving.metrics import ServingMetrics
from app.serving.models import ModelSet, ModelSource, RegistryModelSource, refresh_models
from app.serving.monitorfeed import MonitorFeed
from app.serving.predlog import PredictionLog
from app.serving.routing import RoutingConfig, effective_config
from app.serving.schemas import DecisionRequest, DriftReport, Health

log = logging.getLogger(__name__)

__all__ = ["DecisionService", "Outcome", "Unavailable"]


class DecisionService:
    """One replica's worth of decision making; plain Python and asyncio."""

    def __init__(
        self,
        settings: Settings,
        model_source_factory: Callable[[Settings], ModelSource] = RegistryModelSource,
        reader_factory: Callable[[Settings], Any] | None = None,
        replica: str = "local",
    ) -> None:
        self.settings = settings
        self.replica = replica
        self.config = RoutingConfig()
        self.source = model_source_factory(settings)
        self.models = ModelSet()
        self.model_error: str | None = "models not loaded yet"
        self._reader_factory = reader_factory
        self._reader = None
        self.store_error: str | None = "feature store not connected yet"
        # One thread scores (the feature store client and the GIL gain nothing from more);
        # another talks to the registry so a slow MLflow never stalls decisions.
        self._work = ThreadPoolExecutor(1, thread_name_prefix="decide")
        self._registry_work = ThreadPoolExecutor(1, thread_name_prefix="registry")
        self.metrics = ServingMetrics()
        self.prediction_log = PredictionLog(settings.prediction_log_dir, self.config.log_flush_rows)
        self._last_poll = 0.0
        self._last_flush = time.monotonic()
        self.monitor_feed = MonitorFeed(settings, self.metrics.monitor_dropped)

    async def start(self) -> None:
        """Load the models the aliases name and connect the online store."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._registry_work, self._load_models)
        await loop.run_in_executor(self._work, self._connect_store)

    def apply_config(self, config: RoutingConfig) -> None:
        self.config = config
        self.prediction_log.flush_rows = config.log_flush_rows
        self._last_poll = 0.0  # a new config also re-checks the aliases now
        log.info("routing config applied: %s", config.model_dump())

    def close(self) -> None:
        """Write what the prediction log still buffers (flush never raises)."""
        self.prediction_log.flush()

    # --- upkeep ---------------------------------------------------------------------------
    def _load_models(self) -> None:
        try:
            models = refresh_models(self.models, self.source)
        except Exception as exc:  # keep serving what is loaded; report it on /readyz
            self.model_error = f"model registry: {type(exc).__name__}: {exc}"[:500]
            log.warning("%s", self.model_error)
            return
        if models.versions() != self.models.versions():
            log.info("models now %s (were %s)", models.versions(), self.models.versions())
        # One assignment: a request in flight keeps the set it started with.
        self.models = models
        self.model_error = None if models.champion else "no model holds the champion alias"

    def _connect_store(self) -> None:
        from app.features.online import open_reader

        try:
            self._reader = (self._reader_factory or open_reader)(self.settings)
            self.store_error = None
        except Exception as exc:
            self.store_error = f"feature store: {type(exc).__name__}: {exc}"[:500]
            log.warning("%s", self.store_error)

    async def _maintain(self) -> None:
        """Alias watch, reconnects and periodic prediction-log flushes, forever."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                now = time.monotonic()
                poll = self.config.alias_poll_seconds
                if (poll and now - self._last_poll >= poll) or self.models.champion is None:
                    self._last_poll = now
                    await loop.run_in_executor(self._registry_work, self._load_models)
                if self._reader is None:
                    await loop.run_in_executor(self._work, self._connect_store)
                if now - self._last_flush >= self.config.log_flush_seconds:
                    self._last_flush = now
                    await loop.run_in_executor(self._registry_work, self._flush_log)
                if self.monitor_feed.pending:
                    await self.monitor_feed.send(self._registry_work, now)
            except Exception:  # the loop must outlive any single failure
                log.exception("maintenance step failed")
            await asyncio.sleep(0.25)

    def _flush_log(self) -> None:
        before = self.prediction_log.errors
        self.prediction_log.flush()
        if self.prediction_log.errors > before:
            self.metrics.log_failures.inc()
        self.metrics.log_pending.set(self.prediction_log.pending)

    # --- the decision itself --------------------------------------------------------------
    def _decide_now(self, requests: list[DecisionRequest]) -> tuple[Features, Scored]:
        """Fetch features, route, score and explain; runs on the scoring thread."""
        models, reader = self.models, self._reader
        if models.champion is None:
            raise Unavailable(self.model_error or "no champion model loaded")
        if reader is None:
            raise Unavailable(self.store_error or "feature store not connected")
        challenger_traffic = models.challenger.traffic if models.challenger else None
        config = effective_config(self.config, challenger_traffic)
        features = fetch_features(reader, requests, self.metrics.feature_latency.observe)
        return features, decide_batch(requests, features, models, config)

    def _score_shadow(self, features: Features, scored: Scored) -> None:
        """The challenger's answer to champion traffic: logged and counted, never returned."""
        served = self.models.challenger
        if served is None:
            return
        try:
            threshold = effective_config(self.config, served.traffic).decision_threshold
            records = shadow_records(served, features, scored, threshold)
            for decision, count in Counter(r["decision"] for r in records).items():
                self.metrics.decisions.inc(
                    count, tags={"variant": "challenger", "decision": decision, "shadow": "1"}
                )
            self._log(records)
        except Exception:
            self.metrics.errors.inc(tags={"error": "shadow"})
            log.exception("shadow scoring failed")

    def _log(self, records: list[dict[str, Any]]) -> None:
        try:
            if self.prediction_log.append(records):
                self._registry_work.submit(self._flush_log)
        except Exception:  # the log must never cost a decision
            self.metrics.log_failures.inc()
            log.exception("prediction log append failed")

    async def run(self, requests: list[DecisionRequest]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        try:
            features, scored = await loop.run_in_executor(self._work, self._decide_now, requests)
        except Unavailable as exc:
            self.metrics.errors.inc(tags={"error": "unavailable"})
            return [Outcome(503, detail=str(exc)) for _ in requests]
        except Exception as exc:
            self.metrics.errors.inc(tags={"error": type(exc).__name__})
            log.exception("decision failed")
            return [Outcome(500, detail=f"internal error ({type(exc).__name__})") for _ in requests]
        self._log(scored.records)
        if self.config.drift_monitor and self.settings.monitor_enabled and scored.records:
            self.monitor_feed.queue(scored.records)
        if scored.shadow_rows:
            # Queued behind this batch on the scoring thread: the responses are already built.
            self._work.submit(self._score_shadow, features, scored)
        # One metric update per distinct tag set and batch: each update costs a Ray call.
        counts = Counter(
            (o.response.model.variant, o.response.decision)
            for o in scored.outcomes
            if o.status == 200
        )
        for (variant, decision), count in counts.items():
            self.metrics.decisions.inc(
                count, tags={"variant": variant, "decision": decision, "shadow": "0"}
            )
        unknown = sum(o.status == 404 for o in scored.outcomes)
        if unknown:
            self.metrics.errors.inc(unknown, tags={"error": "unknown_applicant"})
        return scored.outcomes

    async def decide(self, request: DecisionRequest) -> Outcome:
        """One application, timed: what POST /v1/decisions answers."""
        started = time.perf_counter()
        outcome = await self.decide_one(request)
        if outcome.status == 200:
            self.metrics.latency.observe(
                (time.perf_counter() - started) * 1000,
                tags={"variant": outcome.response.model.variant},
            )
        return outcome

    async def decide_one(self, request: DecisionRequest) -> Outcome:
        """One request alone; the Serve deployment batches concurrent ones instead."""
        (outcome,) = await self.run([request])
        return outcome

    def retry_after(self) -> dict[str, str]:
        """Headers of every 503: when a client should try again."""
        return {"Retry-After": str(self.settings.serve_retry_after_seconds)}

    # --- health and monitoring ------------------------------------------------------------
    async def readiness(self) -> Health:
        """Health with status "unavailable" and a detail when a dependency is down."""
        loop = asyncio.get_running_loop()
        problem = self.model_error if self.models.champion is None else None
        store = "connected"
        if self._reader is None:
            problem = problem or self.store_error
            store = "unavailable"
        else:
            try:
                await loop.run_in_executor(self._work, self._probe_store)
            except Exception as exc:
                store = "unavailable"
                problem = problem or f"feature store unavailable: {type(exc).__name__}: {exc}"
        versions = self.models.versions()
        health = Health(
            status="unavailable" if problem else "ok",
            champion=versions["champion"],
            challenger=versions["challenger"],
            feature_store=store,
            detail=problem,
            replica=self.replica,
            routing=self.config.model_dump(),
        )
        return health

    async def drift_report(self) -> DriftReport | Outcome:
        """The drift monitor's latest check (per-feature scores, PD drift, trigger state), or
        an Outcome saying why there is none (404 no check yet, 503 monitor down)."""
        loop = asyncio.get_running_loop()
        try:
            feed = self.monitor_feed
            if feed.monitor is None:
                feed.monitor = await loop.run_in_executor(self._registry_work, feed.find)
            if feed.monitor is None:
                raise LookupError("no drift monitor actor")
            latest, status = await asyncio.wait_for(
                asyncio.gather(feed.monitor.latest.remote(), feed.monitor.status.remote()), 10
            )
        except Exception as exc:
            # A handle to a monitor that is gone stays dead: look it up afresh next time.
            self.monitor_feed.monitor = None
            detail = f"drift monitor unavailable: {type(exc).__name__}: {exc}"[:300]
            return Outcome(503, detail=detail)
        if latest is None:
            return Outcome(
                404,
                detail=f"no drift check has run yet ({status['buffered_rows']} rows buffered; "
                f"a check runs at {self.settings.monitor_check_rows} rows or every "
                f"{self.settings.monitor_check_seconds:g} s with >= "
                f"{self.settings.monitor_min_rows})",
            )
        return DriftReport.model_validate({**latest, "monitor": status})

    def _probe_store(self) -> None:
        self._reader.probe()
