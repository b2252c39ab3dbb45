"""What a replica says about itself: readiness (models, online store, registry, traffic) and
the drift monitor's latest check."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

from app.config import Settings
from app.domain import CHALLENGER, CHAMPION
from app.serving.decide import Outcome
from app.serving.faults import fault
from app.serving.monitorfeed import MonitorFeed
from app.serving.routing import RoutingConfig
from app.serving.schemas import DriftReport, Health
from app.serving.upkeep import Upkeep

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 2.0
# A store probe's result is reused this long: N readiness probes a second, whoever sends
# them, cost one store round trip.
PROBE_CACHE_SECONDS = 1.0


class StoreProbe:
    """The online store's last probe, shared: concurrent callers wait for one round trip,
    and a result younger than PROBE_CACHE_SECONDS is reused."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._result: tuple[float, object, str | None] | None = None  # (when, reader, problem)
        self._running: asyncio.Future | None = None

    async def check(self, reader) -> str | None:
        """None when `reader`'s store answered, else what is wrong."""
        cached = self._result
        fresh = cached is not None and time.monotonic() - cached[0] < PROBE_CACHE_SECONDS
        if fresh and cached[1] is reader:  # a new reader (a reconnect) is probed afresh
            return cached[2]
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._probe(reader))
        # Shielded: a probe whose client gave up does not cancel the others' answer.
        return await asyncio.shield(self._running)

    async def _probe(self, reader) -> str | None:
        loop = asyncio.get_running_loop()
        problem = None
        try:
            # Its own thread and a deadline: a probe never queues behind scoring, and a
            # hung store answers "unavailable" in bounded time.
            probe = loop.run_in_executor(self.executor, reader.probe)
            await asyncio.wait_for(probe, PROBE_TIMEOUT_SECONDS)
        except Exception as exc:
            problem = f"feature store unavailable: {type(exc).__name__}: {exc}"
        self._result = (time.monotonic(), reader, problem)
        return problem


async def readiness(
    upkeep: Upkeep,
    config: RoutingConfig,
    replica: str,
    store_probe: StoreProbe,
    node: str | None = None,
    redact: Callable[[str], str] = lambda text: text,
) -> Health:
    """Health with status "unavailable" and a detail when a dependency is down; every text
    passed through `redact` (secrets in URLs). Only monitoring:read callers see more than the
    status (GET /v1/status).

    A registry that stops answering after the champion loaded is not one: the loaded
    models keep deciding, so the replica stays ready and the detail says so."""
    problem = upkeep.model_error if upkeep.models.champion is None else None
    store = "connected"
    if upkeep.reader is None or upkeep.store_down_since is not None:
        # Known down (requests get 503 at once): say so without another round trip.
        problem = problem or upkeep.store_error
        store = "unavailable"
    else:
        failed = await store_probe.check(upkeep.reader)
        if failed:
            store = "unavailable"
            problem = problem or failed
    versions = upkeep.models.versions()
    challenger = upkeep.models.challenger
    detail, model_error = problem or upkeep.model_error, upkeep.model_error
    return Health(
        status="unavailable" if problem else "ok",
        champion=versions[CHAMPION],
        challenger=versions[CHALLENGER],
        feature_store=store,
        detail=redact(detail) if detail else None,
        replica=replica,
        node=node,
        routing=config.model_dump(),
        registry=upkeep.registry,
        model_error=redact(model_error) if model_error else None,
        traffic=f"v{challenger.version}: {challenger.traffic_note}"
        if challenger is not None and challenger.traffic_note
        else None,
    )


async def drift_report(
    feed: MonitorFeed, executor: Executor, settings: Settings
) -> DriftReport | Outcome:
    """The drift monitor's latest check (per-feature scores, PD drift, trigger state), or
    an Outcome saying why there is none (404 no check yet, 503 monitor down)."""
    loop = asyncio.get_running_loop()
    try:
        if feed.monitor is None:
            feed.monitor = await loop.run_in_executor(executor, feed.find)
        if feed.monitor is None:
            raise LookupError("no drift monitor actor")
        latest, status = await asyncio.wait_for(
            asyncio.gather(feed.monitor.latest.remote(), feed.monitor.status.remote()), 10
        )
    except Exception as exc:
        # A handle to a monitor that is gone stays dead: look it up afresh next time.
        feed.monitor = None
        detail, error_id = fault(log, settings, "drift monitor unavailable", exc)
        return Outcome(503, detail=detail, error_id=error_id)
    if latest is None:
        return Outcome(
            404,
            detail=f"no drift check has run yet ({status['buffered_rows']} rows buffered; "
            f"a check runs at {settings.monitor_check_rows} rows or every "
            f"{settings.monitor_check_seconds:g} s with >= {settings.monitor_min_rows})",
        )
    return DriftReport.model_validate({**latest, "monitor": status})
