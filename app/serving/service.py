"""The decision service without Ray Serve: features, A/B routing, scoring, reasons, logging.

The Serve deployment (decisions.py) is this class plus request batching and its replica's
upkeep; the HTTP routes (api.py) call it. Tests run it in-process, without Ray.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from app.config import Settings
from app.serving.metrics import ServingMetrics
from app.serving.models import ModelSet, ModelSource, RegistryModelSource, refresh_models
from app.serving.predlog import PredictionLog
from app.serving.routing import RoutingConfig, choose_variant, effective_config, shadows
from app.serving.schemas import DecisionRequest, DecisionResponse, DriftReport, Health

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """A dependency (feature store, models) is down: 503 with Retry-After."""


@dataclass
class Outcome:
    status: int
    response: DecisionResponse | None = None
    detail: str = ""


@dataclass
class Scored:
    outcomes: list[Outcome]
    records: list[dict[str, Any]] = field(default_factory=list)
    shadow_frame: pd.DataFrame | None = None
    shadow_meta: list[dict[str, Any]] = field(default_factory=list)


def _response(
    result: pd.DataFrame, pos: int, served, variant: str, request_id: str, applicant_id, as_of
) -> DecisionResponse:
    """Row `pos` of a `CreditModel.score` result as the API's answer."""
    return DecisionResponse(
        request_id=request_id,
        applicant_id=applicant_id,
        probability_of_default=float(result["probability_of_default"].iat[pos]),
        decision=result["decision"].iat[pos],
        reasons=result["reasons"].iat[pos],
        model={"name": served.name, "version": served.version, "variant": variant},
        features_as_of=as_of,
    )


class DecisionService:
    """One replica's worth of decision making; plain Python and asyncio."""

    def __init__(
        self,
        settings: Settings,
        model_source_factory: Callable[[Settings], ModelSource] = RegistryModelSource,
        store_factory: Callable[[Settings], Any] | None = None,
        replica: str = "local",
    ) -> None:
        self.settings = settings
        self.replica = replica
        self.config = RoutingConfig()
        self.source = model_source_factory(settings)
        self.models = ModelSet()
        self.model_error: str | None = "models not loaded yet"
        self._store_factory = store_factory
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
        # Rows for the drift monitor: sent in batches from the upkeep loop, never awaited by a
        # request; bounded here and by the calls in flight, dropping (and counting) beyond.
        self._monitor = None
        self._monitor_rows: list[dict[str, Any]] = []
        self._monitor_calls: list[tuple[Any, list[dict[str, Any]]]] = []
        self._monitor_next_try = 0.0
        self._last_monitor_send = time.monotonic()

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
        from app.features.store import OnlineFeatureReader, get_store

        try:
            store = (self._store_factory or get_store)(self.settings)
            self._reader = OnlineFeatureReader(store, self.settings.feature_service_name)
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
                if self._monitor_rows or self._monitor_calls:
                    await self._feed_monitor(loop, now)
            except Exception:  # the loop must outlive any single failure
                log.exception("maintenance step failed")
            await asyncio.sleep(0.25)

    async def _feed_monitor(self, loop, now: float) -> None:
        """Send buffered rows to the drift monitor; re-queue rows a dead monitor never got."""
        import ray

        if self._monitor_calls:
            refs = [ref for ref, _ in self._monitor_calls]
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            finished = set(done)
            kept = []
            for ref, rows in self._monitor_calls:
                if ref not in finished:
                    kept.append((ref, rows))
                    continue
                try:
                    await ref
                except Exception as exc:  # monitor died before taking them: try again later
                    log.warning("drift monitor call failed (%s); rows re-queued", exc)
                    self._monitor = None
                    self._queue_monitor_rows(rows, front=True)
            self._monitor_calls = kept
        if not self._monitor_rows:
            return
        if now - self._last_monitor_send < 1.0 and len(self._monitor_rows) < 500:
            return
        if self._monitor is None:
            if now < self._monitor_next_try:
                return
            self._monitor_next_try = now + 10.0
            try:
                self._monitor = await loop.run_in_executor(self._registry_work, self._get_monitor)
            except Exception as exc:
                log.warning("drift monitor unavailable: %s", exc)
                return
        if len(self._monitor_calls) >= 8:  # the monitor is behind: keep buffering (bounded)
            return
        rows, self._monitor_rows = self._monitor_rows, []
        self._last_monitor_send = now
        self._monitor_calls.append((self._monitor.submit.remote(rows), rows))

    def _get_monitor(self):
        from app.monitoring.monitor import get_or_create_monitor

        return get_or_create_monitor(self.settings)

    def _queue_monitor_rows(self, rows: list[dict[str, Any]], front: bool = False) -> None:
        self._monitor_rows = [*rows, *self._monitor_rows] if front else self._monitor_rows + rows
        overflow = len(self._monitor_rows) - 20_000
        if overflow > 0:
            del self._monitor_rows[:overflow]
            self.metrics.monitor_dropped.inc(overflow)

    def _flush_log(self) -> None:
        before = self.prediction_log.errors
        self.prediction_log.flush()
        if self.prediction_log.errors > before:
            self.metrics.log_failures.inc()
        self.metrics.log_pending.set(self.prediction_log.pending)

    # --- the decision itself --------------------------------------------------------------
    def _decide_now(self, requests: list[DecisionRequest]) -> Scored:
        """Fetch features, route, score and explain; runs on the scoring thread."""
        models, reader = self.models, self._reader
        challenger_traffic = models.challenger.traffic if models.challenger else None
        config = effective_config(self.config, challenger_traffic)
        if models.champion is None:
            raise Unavailable(self.model_error or "no champion model loaded")
        if reader is None:
            raise Unavailable(self.store_error or "feature store not connected")
        rows = [{"applicant_id": r.applicant_id, **r.application.model_dump()} for r in requests]
        started = time.perf_counter()
        try:
            features = reader.read(rows)
        except Exception as exc:
            raise Unavailable(f"feature store unavailable: {type(exc).__name__}: {exc}") from None
        finally:
            self.metrics.feature_latency.observe((time.perf_counter() - started) * 1000)

        has_challenger = models.challenger is not None
        variants = [choose_variant(r.applicant_id, config, has_challenger) for r in requests]
        outcomes: list[Outcome | None] = [None] * len(requests)
        scored = Scored(outcomes=[])  # filled below
        frame = features.frame
        for variant in ("champion", "challenger"):
            served = getattr(models, variant)
            idx = [i for i, v in enumerate(variants) if v == variant and bool(features.known[i])]
            if not idx:
                continue
            subset = frame.iloc[idx]
            result = served.model.score(subset, threshold=config.decision_threshold)
            for pos, i in enumerate(idx):
                response = _response(
                    result,
                    pos,
                    served,
                    variant,
                    uuid.uuid4().hex,
                    requests[i].applicant_id,
                    features.as_of[i],
                )
                outcomes[i] = Outcome(200, response)
                scored.records.append(self._record(response, subset.iloc[pos], served, False))
        for i, request in enumerate(requests):
            if outcomes[i] is None:
                outcomes[i] = Outcome(
                    404, detail=f"unknown applicant_id {request.applicant_id!r}: no features"
                )
        shadow_idx = [
            i
            for i, o in enumerate(outcomes)
            if o.status == 200 and shadows(o.response.model.variant, config, has_challenger)
        ]
        if shadow_idx:
            scored.shadow_frame = frame.iloc[shadow_idx]
            scored.shadow_meta = [
                {
                    "request_id": outcomes[i].response.request_id,
                    "applicant_id": requests[i].applicant_id,
                    "features_as_of": features.as_of[i],
                }
                for i in shadow_idx
            ]
        scored.outcomes = outcomes  # type: ignore[assignment]
        return scored

    def _record(self, response: DecisionResponse, row: pd.Series, served, shadow: bool) -> dict:
        record = {
            "request_id": response.request_id,
            "logged_at": datetime.now(UTC),
            "applicant_id": response.applicant_id,
            "variant": response.model.variant,
            "shadow": shadow,
            "model_name": served.name,
            "model_version": served.version,
            "probability_of_default": response.probability_of_default,
            "decision": response.decision,
            "reasons": json.dumps([r.model_dump() for r in response.reasons]),
            "features_as_of": response.features_as_of,
        }
        for column in served.model.encoder.raw_columns:
            value = row.get(column)
            record[column] = None if value is None or value != value else value
        return record

    def _score_shadow(self, frame: pd.DataFrame, meta: list[dict[str, Any]]) -> None:
        """The challenger's answer to champion traffic: logged and counted, never returned."""
        served = self.models.challenger
        if served is None:
            return
        try:
            config = effective_config(self.config, served.traffic)
            result = served.model.score(frame, threshold=config.decision_threshold)
            records = []
            for pos, info in enumerate(meta):
                response = _response(
                    result,
                    pos,
                    served,
                    "challenger",
                    info["request_id"],
                    info["applicant_id"],
                    info["features_as_of"],
                )
                records.append(self._record(response, frame.iloc[pos], served, True))
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
            scored = await loop.run_in_executor(self._work, self._decide_now, requests)
        except Unavailable as exc:
            self.metrics.errors.inc(tags={"error": "unavailable"})
            return [Outcome(503, detail=str(exc)) for _ in requests]
        except Exception as exc:
            self.metrics.errors.inc(tags={"error": type(exc).__name__})
            log.exception("decision failed")
            return [Outcome(500, detail=f"internal error ({type(exc).__name__})") for _ in requests]
        self._log(scored.records)
        if self.config.drift_monitor and self.settings.monitor_enabled and scored.records:
            self._queue_monitor_rows(scored.records)
        if scored.shadow_frame is not None:
            # Queued behind this batch on the scoring thread: the responses are already built.
            self._work.submit(self._score_shadow, scored.shadow_frame, scored.shadow_meta)
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
            if self._monitor is None:
                self._monitor = await loop.run_in_executor(self._registry_work, self._find_monitor)
            if self._monitor is None:
                raise LookupError("no drift monitor actor")
            latest, status = await asyncio.wait_for(
                asyncio.gather(self._monitor.latest.remote(), self._monitor.status.remote()), 10
            )
        except Exception as exc:
            # A handle to a monitor that is gone stays dead: look it up afresh next time.
            self._monitor = None
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

    def _find_monitor(self):
        import ray

        from app.monitoring.monitor import find_monitor

        # Outside a Ray worker (the service in-process) a lookup would start a local Ray.
        if not ray.is_initialized():
            raise LookupError("not running under Ray")
        return find_monitor(self.settings)

    def _probe_store(self) -> None:
        # A real read of an id that cannot exist: proves the online store answers.
        self._reader.store.get_online_features(
            features=self._reader.refs[:1], entity_rows=[{"applicant_id": "__readyz__"}]
        )
