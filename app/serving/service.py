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
from app.domain import CHALLENGER
from app.predictions.log import PredictionLog
from app.serving.decide import (
    Features,
    Outcome,
    Scored,
    StoreUnavailable,
    Unavailable,
    decide_batch,
    fetch_features,
    shadow_records,
)
from app.serving.guard import Gate
from app.serving.health import drift_report, readiness
from app.serving.idempotency import KeyedDecisions, open_idempotency
from app.serving.metrics import ServingMetrics
from app.serving.models import ModelSet
from app.serving.monitorfeed import MonitorFeed
from app.serving.routing import RoutingConfig, effective_config
from app.serving.schemas import DecisionRequest, DriftReport, Health
from app.serving.upkeep import Upkeep, open_online_reader
from app.training.offers import OfferBounds
from app.training.source import ModelSource, RegistryModelSource

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
        idempotency_factory: Callable[[Settings], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.replica = replica
        self.node: str | None = None  # the Ray node a Serve replica runs on
        self.config = RoutingConfig()
        self.offer_bounds = OfferBounds.from_settings(settings)
        # One thread scores: the GIL gains nothing from more, and the reader is not shared.
        self._work = ThreadPoolExecutor(1, thread_name_prefix="decide")
        self._probe = ThreadPoolExecutor(1, thread_name_prefix="probe")
        self.metrics = ServingMetrics()
        self.gate = Gate(
            settings, lambda status: self.metrics.refused.inc(tags={"status": str(status)})
        )
        self.prediction_log = PredictionLog(
            settings.prediction_log_dir,
            self.config.log_flush_rows,
            max_pending=settings.prediction_log_max_pending,
            fsync_seconds=settings.prediction_log_fsync_seconds,
        )
        self.monitor_feed = MonitorFeed(settings, self.metrics.monitor_dropped)
        self.keyed = KeyedDecisions(
            settings, idempotency_factory or open_idempotency, self.metrics.errors
        )
        self.upkeep = Upkeep(
            settings,
            model_source_factory(settings),
            reader_factory or open_online_reader,
            self.prediction_log,
            self.metrics,
            self.monitor_feed,
        )

    @property
    def models(self) -> ModelSet:
        return self.upkeep.models

    async def start(self) -> None:
        """Load the models the aliases name and connect the online store."""
        authenticator = self.gate.authenticator
        if authenticator.enabled:
            log.info("%s", authenticator.describe())
            if not len(authenticator.keys) and authenticator.jwt is None:
                log.error(
                    "no API key in %s and no JWT issuer: every /v1 request will get 401 "
                    "(create a key: python -m jobs.api_keys create --id NAME)",
                    authenticator.keys.path,
                )
        else:
            log.warning("%s", authenticator.describe())
        await self.upkeep.start()

    async def maintain(self) -> None:
        """The upkeep loop (aliases, reconnects, log flushes, monitor feed), forever."""
        await self.upkeep.run(lambda: self.config)

    def apply_config(self, config: RoutingConfig) -> None:
        self.config = config
        self.prediction_log.flush_rows = config.log_flush_rows
        self.upkeep.recheck_aliases()
        log.info("routing config applied: %s", config.model_dump())

    def close(self) -> None:
        """Compact what this replica journaled into Parquet (never raises)."""
        self.prediction_log.close()

    # --- the decision itself --------------------------------------------------------------
    def _decide_now(self, requests: list[DecisionRequest]) -> tuple[Features, Scored]:
        """Fetch features, route, score and explain; runs on the scoring thread."""
        upkeep = self.upkeep
        models, reader = upkeep.models, upkeep.reader
        if models.champion is None:
            raise Unavailable(upkeep.model_error or "no champion model loaded")
        if reader is None or upkeep.store_down_since is not None:
            raise Unavailable(upkeep.store_error or "feature store not connected")
        challenger_traffic = models.challenger.traffic if models.challenger else None
        config = effective_config(self.config, challenger_traffic)
        features = fetch_features(reader, requests, self.metrics.feature_latency.observe)
        offers = self.offer_bounds if config.counter_offers else None
        return features, decide_batch(requests, features, models, config, offers)

    def _score_shadow(self, features: Features, scored: Scored) -> None:
        """The challenger's answer to champion traffic: logged and counted, never returned."""
        served = self.models.challenger
        if served is None:
            return
        try:
            threshold = effective_config(self.config, served.traffic).decision_threshold
            records = shadow_records(served, features, scored, threshold)
            for record in records:
                record["caller"] = scored.callers.get(record["request_id"], "-")
            for decision, count in Counter(r["decision"] for r in records).items():
                self.metrics.decisions.inc(
                    count,
                    tags={
                        "variant": CHALLENGER,
                        "decision": decision,
                        "shadow": "1",
                        "caller": "-",
                    },
                )
            self._log(records)
        except Exception:
            self.metrics.errors.inc(tags={"error": "shadow"})
            log.exception("shadow scoring failed")

    def _log(self, records: list[dict[str, Any]]) -> None:
        # On disk (the journal) before the answers leave; the log compacts on its own thread.
        try:
            self.prediction_log.append(records)
        except Exception:  # the log must never cost a decision
            self.metrics.log_failures.inc()
            log.exception("prediction log append failed")

    async def run(
        self, requests: list[DecisionRequest], callers: list[str] | None = None
    ) -> list[Outcome]:
        """Decide a batch; `callers[i]` (the key id that sent request i) goes into its records."""
        loop = asyncio.get_running_loop()
        try:
            if self.config.score_inline:
                features, scored = self._decide_now(requests)
            else:
                features, scored = await loop.run_in_executor(
                    self._work, self._decide_now, requests
                )
        except Unavailable as exc:
            if isinstance(exc, StoreUnavailable):
                self.upkeep.store_failed(str(exc))
            self.metrics.errors.inc(tags={"error": "unavailable"})
            return [Outcome(503, detail=str(exc)) for _ in requests]
        except Exception as exc:
            self.metrics.errors.inc(tags={"error": type(exc).__name__})
            log.exception("decision failed")
            return [Outcome(500, detail=f"internal error ({type(exc).__name__})") for _ in requests]
        if callers is not None:
            _attribute(scored, callers)
        self._log(scored.records)
        if self.config.drift_monitor and self.settings.monitor_enabled and scored.records:
            self.monitor_feed.offer(scored.records)
        if scored.shadow_rows:
            # Queued behind this batch on the scoring thread: the responses are already built.
            self._work.submit(self._score_shadow, features, scored)
        # One metric update per distinct tag set and batch: each update costs a Ray call.
        counts = Counter(
            (o.response.model.variant, o.response.decision, caller)
            for o, caller in zip(scored.outcomes, callers or ["-"] * len(requests), strict=True)
            if o.status == 200
        )
        for (variant, decision, caller), count in counts.items():
            tags = {"variant": variant, "decision": decision, "shadow": "0", "caller": caller}
            self.metrics.decisions.inc(count, tags=tags)
        unknown = sum(o.status == 404 for o in scored.outcomes)
        if unknown:
            self.metrics.errors.inc(unknown, tags={"error": "unknown_applicant"})
        return scored.outcomes

    async def decide(
        self, request: DecisionRequest, idempotency_key: str | None = None, caller: str = "-"
    ) -> Outcome:
        """One application, timed: what POST /v1/decisions answers. With an idempotency key,
        a retry of an answered request gets the first answer back (see idempotency.py); keys
        are the caller's own, so one caller can never replay another's answer."""
        if idempotency_key is not None:
            return await self.keyed.decide(
                f"{caller}/{idempotency_key}",
                request,
                lambda r: self.decide(r, caller=caller),
            )
        started = time.perf_counter()
        outcome = await self.decide_one(request, caller)
        if outcome.status == 200:
            self.metrics.latency.observe(
                (time.perf_counter() - started) * 1000,
                tags={"variant": outcome.response.model.variant},
            )
        return outcome

    async def decide_one(self, request: DecisionRequest, caller: str = "-") -> Outcome:
        """One request alone; the Serve deployment batches concurrent ones instead."""
        (outcome,) = await self.run([request], [caller])
        return outcome

    def health_problem(self) -> str | None:
        """Why Serve should replace this replica: its online store has been down too long."""
        since = self.upkeep.store_down_since
        if since is None:
            return None
        down = time.monotonic() - since
        if down <= self.settings.serve_store_unhealthy_seconds:
            return None
        return f"online store unavailable for {down:.0f} s: {self.upkeep.store_error}"

    def retry_after(self) -> dict[str, str]:
        """Headers of every 503: when a client should try again."""
        return {"Retry-After": str(self.settings.serve_retry_after_seconds)}

    # --- health and monitoring ------------------------------------------------------------
    async def readiness(self) -> Health:
        return await readiness(self.upkeep, self.config, self.replica, self._probe, self.node)

    async def drift_report(self) -> DriftReport | Outcome:
        return await drift_report(self.monitor_feed, self.upkeep.executor, self.settings)


def _attribute(scored: Scored, callers: list[str]) -> None:
    """Each answer's log record (and its shadow's, later) names the caller that asked."""
    by_request = {
        o.response.request_id: caller
        for o, caller in zip(scored.outcomes, callers, strict=True)
        if o.status == 200
    }
    scored.callers = by_request
    for record in scored.records:
        record["caller"] = by_request.get(record["request_id"], "-")
