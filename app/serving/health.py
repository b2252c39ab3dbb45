"""What a replica says about itself: readiness (models, online store, registry, traffic) and
the drift monitor's latest check."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from app.config import Settings
from app.domain import CHALLENGER, CHAMPION
from app.serving.decide import Outcome
from app.serving.monitorfeed import MonitorFeed
from app.serving.routing import RoutingConfig
from app.serving.schemas import DriftReport, Health
from app.serving.upkeep import Upkeep

PROBE_TIMEOUT_SECONDS = 2.0


async def readiness(
    upkeep: Upkeep,
    config: RoutingConfig,
    replica: str,
    probe_executor: Executor,
    node: str | None = None,
) -> Health:
    """Health with status "unavailable" and a detail when a dependency is down.

    A registry that stops answering after the champion loaded is not one: the loaded
    models keep deciding, so the replica stays ready and the detail says so."""
    loop = asyncio.get_running_loop()
    problem = upkeep.model_error if upkeep.models.champion is None else None
    store = "connected"
    if upkeep.reader is None:
        problem = problem or upkeep.store_error
        store = "unavailable"
    else:
        try:
            # Its own thread and a deadline: a probe never queues behind scoring, and a
            # hung store answers "unavailable" in bounded time.
            probe = loop.run_in_executor(probe_executor, upkeep.reader.probe)
            await asyncio.wait_for(probe, PROBE_TIMEOUT_SECONDS)
        except Exception as exc:
            store = "unavailable"
            problem = problem or f"feature store unavailable: {type(exc).__name__}: {exc}"
    versions = upkeep.models.versions()
    challenger = upkeep.models.challenger
    return Health(
        status="unavailable" if problem else "ok",
        champion=versions[CHAMPION],
        challenger=versions[CHALLENGER],
        feature_store=store,
        detail=problem or upkeep.model_error,
        replica=replica,
        node=node,
        routing=config.model_dump(),
        registry=upkeep.registry,
        model_error=upkeep.model_error,
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
        detail = f"drift monitor unavailable: {type(exc).__name__}: {exc}"[:300]
        return Outcome(503, detail=detail)
    if latest is None:
        return Outcome(
            404,
            detail=f"no drift check has run yet ({status['buffered_rows']} rows buffered; "
            f"a check runs at {settings.monitor_check_rows} rows or every "
            f"{settings.monitor_check_seconds:g} s with >= {settings.monitor_min_rows})",
        )
    return DriftReport.model_validate({**latest, "monitor": status})
