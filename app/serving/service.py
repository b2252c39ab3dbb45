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
from app.domain import Variant
from app.predictions.log import PredictionLog
from app.predictions.schema import schema_for
from app.serving.auth import Caller
from app.serving.decide import (
    UNREADABLE,
    Features,
    ModelUnavailable,
    Outcome,
    Scored,
    StoreFailed,
    StoreUnavailable,
    Unavailable,
    attribute,
    decide_batch,
    fetch_features,
    undecided,
)
from app.serving.faults import Incidents, fault
from app.serving.guard import Gate
from app.serving.health import StoreProbe, drift_report, readiness
from app.serving.idempotency import Claim, KeyedDecisions
from app.serving.keystore import open_idempotency
from app.serving.metrics import ServingMetrics
from app.serving.models import ModelSet
from app.serving.monitorfeed import MonitorFeed
from app.serving.routing import RoutingConfig, effective_config, pinned
from app.serving.schemas import DecisionRequest, DriftReport, Health
from app.serving.shadow import ShadowScoring
from app.serving.upkeep import Upkeep, open_online_reader
from app.training.offers import OfferBounds
from app.training.source import ModelSource, RegistryModelSource

log = logging.getLogger(__name__)

__all__ = ["DecisionService", "Outcome", "Unavailable"]

# Who asked, where nobody did (in-process callers without authentication).
NOBODY = Caller("-", frozenset())


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
        self.dataset = settings.load_dataset()  # what the bodies and lookups follow
        self.replica = replica
        self.node: str | None = None  # the Ray node a Serve replica runs on
        self.config = RoutingConfig()
        self.offer_bounds = OfferBounds.from_settings(settings)
        # One thread scores: the GIL gains nothing from more, and the reader is not shared.
        self._work = ThreadPoolExecutor(1, thread_name_prefix="decide")
        self.store_probe = StoreProbe(ThreadPoolExecutor(1, thread_name_prefix="probe"))
        self.metrics = ServingMetrics()
        self.incidents = Incidents(log, settings)
        self.gate = Gate(
            settings, lambda status: self.metrics.refused.inc(tags={"status": str(status)})
        )
        self.prediction_log = PredictionLog(
            settings.prediction_log_dir,
            self.config.log_flush_rows,
            max_pending=settings.prediction_log_max_pending,
            fsync_seconds=settings.prediction_log_fsync_seconds,
            schema=schema_for(self.dataset),
        )
        self.monitor_feed = MonitorFeed(settings, self.metrics.monitor_dropped)
        self.shadow = ShadowScoring(
            self._work, self.metrics, self._log, lambda: self.models.challenger, lambda: self.config
        )
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
        self.gate.authenticator.announce(log)
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
    def _decide_now(
        self, requests: list[DecisionRequest], pin: Variant | None = None, atomic: bool = False
    ) -> tuple[Features, Scored]:
        """Fetch features, route, score and explain; runs on the scoring thread. `pin`: the
        variant that answers every request; `atomic`: decide none unless all are known."""
        upkeep = self.upkeep
        models, reader = upkeep.models, upkeep.reader
        if models.champion is None:
            raise ModelUnavailable(upkeep.model_error or "no champion model loaded")
        if reader is None or upkeep.store_down_since is not None:
            raise StoreUnavailable(upkeep.store_error or "feature store not connected")
        challenger_traffic = models.challenger.traffic if models.challenger else None
        config = effective_config(self.config, challenger_traffic)
        if pin is not None:
            config = pinned(config, pin)
        features = fetch_features(reader, requests, self.metrics.feature_latency.observe)
        if atomic and not all(features.known):
            return features, undecided(requests, features)
        offers = self.offer_bounds if config.counter_offers else None
        return features, decide_batch(requests, features, models, config, offers)

    def _log(self, records: list[dict[str, Any]]) -> None:
        # On disk (the journal) before the answers leave; the log compacts on its own thread.
        try:
            self.prediction_log.append(records)
        except Exception:  # the log must never cost a decision
            self.metrics.log_failures.inc()
            log.exception("prediction log append failed")

    async def run(
        self,
        requests: list[DecisionRequest],
        callers: list[Caller] | None = None,
        claims: list[Claim | None] | None = None,
        pin: Variant | None = None,
        atomic: bool = False,
    ) -> list[Outcome]:
        """Decide a batch. `callers[i]` sent request i (named in its records and metrics);
        `claims[i]` is its Idempotency-Key claim, marked decided before anything is logged or
        answered (a request whose mark fails gets 503 and no decision). `pin` has one
        variant answer all (a version asked for directly); `atomic` decides nothing unless
        every applicant is known (a V2 tensor is answered whole or not at all)."""
        loop, n = asyncio.get_running_loop(), len(requests)
        callers = callers or [NOBODY] * n
        try:
            if self.config.score_inline:
                features, scored = self._decide_now(requests, pin, atomic)
            else:
                features, scored = await loop.run_in_executor(
                    self._work, self._decide_now, requests, pin, atomic
                )
        except Unavailable as exc:
            if isinstance(exc, StoreFailed):
                self.upkeep.store_failed(self.settings.redact(str(exc)))
            self.metrics.errors.inc(tags={"error": "unavailable"})
            detail, error_id = self.incidents.report(exc.public, str(exc))
            return [Outcome(503, detail=detail, error_id=error_id, whole_batch=True)] * n
        except Exception as exc:
            self.metrics.errors.inc(tags={"error": type(exc).__name__})
            detail, error_id = fault(log, self.settings, "internal error", exc, "deciding", True)
            return [Outcome(500, detail=detail, error_id=error_id, whole_batch=True)] * n
        claims = claims or [None] * n
        headers = [claim.header if claim is not None else None for claim in claims]
        attribute(scored, [c.asker(h) for c, h in zip(callers, headers, strict=True)])
        if claims and any(claims):
            await self.keyed.mark_batch(scored, claims)
        self._report_unreadable(scored, requests, features)
        if scored.records:
            self._log(scored.records)
        if self.config.drift_monitor and self.settings.monitor_enabled and scored.records:
            self.monitor_feed.offer(scored.records)
        if scored.shadow_rows:
            self.shadow.offer(features, scored)
        self._count(scored, callers)
        return scored.outcomes

    def _count(self, scored: Scored, callers: list[Caller]) -> None:
        # One metric update per distinct tag set and batch: each update costs a Ray call.
        counts = Counter(
            (o.response.model.variant, o.response.decision, caller.label)
            for o, caller in zip(scored.outcomes, callers, strict=True)
            if o.status == 200
        )
        for (variant, decision, label), count in counts.items():
            tags = {"variant": variant, "decision": decision, "shadow": "0", "caller": label}
            self.metrics.decisions.inc(count, tags=tags)
        unknown = sum(o.status == 404 for o in scored.outcomes)
        if unknown:
            self.metrics.errors.inc(unknown, tags={"error": "unknown_applicant"})

    def _report_unreadable(
        self, scored: Scored, requests: list[DecisionRequest], features: Features
    ) -> None:
        """A stored record that cannot be read fails its own request only, with an error id
        whose log line says which applicant and why."""
        for i, reason in enumerate(features.unreadable):
            if reason and scored.outcomes[i].status == 500:
                self.metrics.errors.inc(tags={"error": "unreadable_features"})
                why = f"{requests[i].entity_id!r}: {reason}"
                detail, error_id = self.incidents.report(UNREADABLE, why)
                scored.outcomes[i] = Outcome(500, detail=detail, error_id=error_id)

    async def decide(
        self,
        request: DecisionRequest,
        idempotency_key: str | None = None,
        caller: Caller = NOBODY,
        pin: Variant | None = None,
    ) -> Outcome:
        """One application, timed: what POST /v1/decisions answers. With an idempotency key,
        a retry of an answered request gets the first answer back (see idempotency.py); keys
        are the caller's own, so one caller can never replay another's answer."""
        claim = None
        if idempotency_key is not None:
            scoped = f"{caller.id}/{idempotency_key}"
            claimed = await self.keyed.claim(scoped, idempotency_key, request)
            if isinstance(claimed, Outcome):
                return claimed
            claim = claimed
        started = time.perf_counter()
        if pin is None:
            outcome = await self.decide_one(request, caller, claim)
        else:  # not batched with requests routed as usual
            (outcome,) = await self.run([request], [caller], [claim], pin=pin)
        if claim is not None:
            if outcome.status == 200:
                await self.keyed.finish(claim, outcome.response)
            else:
                await self.keyed.release(claim)
        if outcome.status == 200:
            self.metrics.latency.observe(
                (time.perf_counter() - started) * 1000,
                tags={"variant": outcome.response.model.variant},
            )
        return outcome

    async def decide_one(
        self, request: DecisionRequest, caller: Caller = NOBODY, claim: Claim | None = None
    ) -> Outcome:
        """One request alone; the Serve deployment batches concurrent ones instead."""
        (outcome,) = await self.run([request], [caller], [claim])
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
        """This replica's readiness with its details (for /v1/status; /readyz says only the
        status); the store probe behind it is shared and reused for about a second."""
        upkeep, redact = self.upkeep, self.settings.redact
        return await readiness(
            upkeep, self.config, self.replica, self.store_probe, self.node, redact
        )

    async def drift_report(self) -> DriftReport | Outcome:
        return await drift_report(self.monitor_feed, self.upkeep.executor, self.settings)
