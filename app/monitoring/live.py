"""The main job's drift check: ask the live drift monitor about the decisions just sent."""

from __future__ import annotations

import contextlib
import time

from app.config import Settings
from app.domain import PREDICTION
from app.waiting import WaitTimeout, poll


def check_drift(settings: Settings, answered: int, options: dict, timeout: float) -> str:
    """Ask the live drift monitor to check the decisions it has been sent (`options`: the
    deployment's, whose user_config may turn the feed off)."""
    import ray

    from app.monitoring.monitor import find_monitor

    user_config = options.get("user_config") or {}
    if not (settings.monitor_enabled and user_config.get("drift_monitor", True)):
        return "drift monitor off (CREDIT_MONITOR_ENABLED or user_config drift_monitor)"
    # The replicas start the monitor with their first rows (about a second after them).
    deadline = time.monotonic() + timeout
    try:
        monitor = poll(lambda: find_monitor(settings), "a drift monitor", timeout, 0.5)
    except WaitTimeout:
        return f"no drift monitor appeared within {timeout:g} s of the decisions"

    # Replicas forward rows about once a second (a sample of them under load); wait for the
    # rows standing for this run's decisions to arrive (what arrived is checked either way).
    def arrived() -> bool:
        status = ray.get(monitor.status.remote(), timeout=60)
        return status["buffered_represented_rows"] >= answered

    with contextlib.suppress(WaitTimeout):
        poll(arrived, "the decisions' rows at the monitor", deadline - time.monotonic(), 0.5)
    result = ray.get(monitor.check_now.remote(), timeout=timeout)
    if result is None:
        return "no decisions reached the drift monitor"
    drifted = [f["column"] for f in result["features"] if f["drifted"]]
    verdict = "DRIFT" if result["dataset_drift"] else "no drift"
    rate = result["extra"].get("sample_rate", 1.0)
    sampled = f" (a {rate:.0%} sample of those answered)" if rate < 1 else ""
    score = result.get("stability", {}).get(PREDICTION)
    psi = f", score PSI {score['psi']:.3f} ({score['band']})" if score else ""
    return (
        f"{verdict} over {result['rows']} decisions{sampled} vs champion "
        f"v{result['model_version']}'s training data (drift share {result['drift_share']:.2f}"
        f"{psi}{', drifted: ' + ', '.join(drifted) if drifted else ''}); report "
        f"{result['extra']['report']}"
    )
