"""The drift monitor: a named Ray actor that batches Evidently checks over live traffic.

Serving replicas send the feature rows of their answered decisions (fire and forget). The
actor spools every batch it receives to disk before acknowledging it, so a crash and restart
(Ray restarts it: `max_restarts=-1`) resumes with the same rows; a check consumes the spooled
rows and only then deletes them. Checks run on a background thread every `check_rows` rows or
`check_seconds` seconds, so receiving rows never waits for Evidently.

The parts: spool.py (the durable rows), window.py and drift.py (the check), schedule.py (when),
store.py (its files and MLflow), workspace.py (the Evidently workspace), retrain.py (the
retraining trigger), metrics.py (Prometheus); this module runs them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import Settings
from app.domain import CHAMPION
from app.monitoring.drift import DriftConfig, DriftResult, drift_config
from app.monitoring.metrics import DriftMetrics
from app.monitoring.retrain import (
    JobsApi,
    RayJobs,
    Retrainer,
    RetrainPolicy,
    near_the_jobs_api,
    retrain_policy,
)
from app.monitoring.schedule import (
    CheckSchedule,
    Scheduler,
    check_schedule,
    lower_thread_priority,
)
from app.monitoring.spool import Spool
from app.monitoring.store import ResultStore, log_to_mlflow
from app.monitoring.window import check_window, window_schema
from app.monitoring.workspace import DriftWorkspace, workspace_config
from app.training import registry
from app.training.reference import Reference, load_reference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorConfig:
    """The drift monitor's view of the settings."""

    directory: Path
    max_buffer_rows: int
    keep_reports: int
    drift: DriftConfig
    schedule: CheckSchedule
    retrain: RetrainPolicy


def monitor_config(settings: Settings) -> MonitorConfig:
    return MonitorConfig(
        directory=Path(settings.monitor_dir),
        max_buffer_rows=settings.monitor_max_buffer_rows,
        keep_reports=settings.monitor_keep_reports,
        drift=drift_config(settings),
        schedule=check_schedule(settings),
        retrain=retrain_policy(settings),
    )


class DriftMonitor:
    """Runs as a Ray actor (see `get_or_create_monitor`); also usable in-process."""

    def __init__(
        self,
        settings: Settings,
        reference_loader: Callable[[Settings], Reference] = load_reference,
        jobs_factory: Callable[[Settings], JobsApi] = RayJobs,
        start: bool = True,
    ) -> None:
        self.settings = settings
        self.monitor_config = options = monitor_config(settings)
        self.config = options.drift
        self._load_reference = reference_loader
        self._jobs_factory = jobs_factory
        self._jobs: JobsApi | None = None
        self.root = options.directory
        self.spool = self.root / "spool"
        self.store = ResultStore(self.root, options.keep_reports)
        self.results, self.reports = self.store.results, self.store.reports
        self._check_lock = threading.Lock()
        self.last_error: str | None = None
        self.scheduler = Scheduler(options.schedule)
        self._reference: Reference | None = None
        self.state = self.store.load_state()
        self._latest = self.store.load_latest()
        self.retrainer = Retrainer(
            options.retrain, self.state, lambda: self.jobs, self.root / "triggers.jsonl"
        )
        self.schema = window_schema(settings.load_dataset())
        self.buffer = Spool(self.spool, self.schema, options.max_buffer_rows)
        self.buffer.recover()
        self._metrics = DriftMetrics.create()
        self.workspace = DriftWorkspace(workspace_config(settings))
        self._stop = threading.Event()
        if start:
            threading.Thread(target=self._loop, name="drift-checks", daemon=True).start()

    # --- receiving rows ------------------------------------------------------------------
    def submit(self, records: list[dict[str, Any]]) -> int:
        """Take decision records (prediction-log dicts); returns how many were kept."""
        kept, dropped = self.buffer.submit(records)
        if dropped and self._metrics:
            self._metrics.dropped.inc(dropped)
        return kept

    @property
    def recovered(self) -> int:
        return self.buffer.recovered

    # --- answers -------------------------------------------------------------------------
    def latest(self) -> dict[str, Any] | None:
        return self._latest

    def status(self) -> dict[str, Any]:
        return {
            "buffered_rows": self.buffer.rows,
            # The answered decisions those rows stand for (more than them when sampled).
            "buffered_represented_rows": self.buffer.represented(),
            "received_rows": self.buffer.received,
            "recovered_rows": self.buffer.recovered,
            "dropped_rows": self.buffer.dropped,
            "checks": self.state.checks,
            "consecutive_drift": self.state.consecutive_drift,
            "active_job": self.state.active_job,
            "triggers": self.state.triggers[-10:],
            "reference_version": self._reference.model_version if self._reference else None,
            "last_error": self.last_error,
            "workspace_failures": self.workspace.failures,
            "next_check_in_s": self.scheduler.next_check_in(),
            "pid": os.getpid(),
        }

    def check_now(self) -> dict[str, Any] | None:
        """Check whatever is buffered now (operators and tests); None when nothing is."""
        return self._check()

    def stop(self) -> None:
        self._stop.set()

    # --- checking ------------------------------------------------------------------------
    def _due(self) -> bool:
        return self.scheduler.due(self.buffer.rows)

    def _loop(self) -> None:
        lower_thread_priority()  # this thread only: receiving rows keeps normal priority
        while not self._stop.wait(self.scheduler.pause):
            if self._metrics and self._latest:
                self._metrics.keep_fresh(self._latest)
            if self._due():
                self._timed_check()

    def _timed_check(self) -> None:
        """One check, its CPU time counted against the budget; a failure keeps the rows."""
        cpu = time.process_time()
        try:
            self._check()
        except Exception as exc:  # keep the rows, report, retry later
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("drift check failed (rows kept): %s", self.last_error)
            if self._metrics:
                self._metrics.failures.inc()
            self.scheduler.failed()
        else:
            self.scheduler.checked(time.process_time() - cpu)

    def _reference_now(self) -> Reference:
        """The champion's reference, reloaded only when the champion changes."""
        client = registry.client(self.settings)
        champion = registry.alias_version(client, self.settings.model_name, CHAMPION)
        if self._reference is None or champion != self._reference.model_version:
            self._reference = self._load_reference(self.settings)
        return self._reference

    def _check(self) -> dict[str, Any] | None:
        with self._check_lock:
            batches = self.buffer.take()
            if not batches:
                return None
            reference = self._reference_now()
            tables = [b.table for b in batches]
            check = self.state.checks + 1
            result, snapshot = check_window(tables, reference, self.config, check)
            self.state.checks = check
            # A finished retraining job is cleared at every check, drift or not.
            self._settle_active_job()
            trigger = self._after_check(result, reference)
            if trigger:
                result.extra["trigger"] = trigger
            payload = result.to_dict()
            self.store.save(payload, snapshot, self.state)
            self._publish(result, reference)
            self._add_to_workspace(result, snapshot)
            # Only now are the rows done with: drop exactly the batches this check used.
            self.buffer.commit(batches)
            self._latest = payload
            self.last_error = None
            return payload

    def _publish(self, result: DriftResult, reference: Reference) -> None:
        if self._metrics:
            self._metrics.record(result)
        log_to_mlflow(self.settings, reference.run_id, result, step=self.state.checks)

    def _add_to_workspace(self, result: DriftResult, snapshot: Any) -> None:
        """The check as a run of the Evidently workspace; a failure is counted, not raised."""
        added = self.workspace.record(result, snapshot)
        if not added and self._metrics and self._metrics.workspace_failures:
            self._metrics.workspace_failures.inc()

    # --- retraining ----------------------------------------------------------------------
    def _after_check(self, result: DriftResult, reference: Reference) -> dict[str, Any] | None:
        event = self.retrainer.after_check(result, reference.model_version)
        if event and event["action"] == "submitted" and self._metrics:
            self._metrics.triggers.inc()
        return event

    def request_retraining(self, reason: str) -> dict[str, Any]:
        """Retraining asked for outside a check (`jobs.monitor performance
        --retrain-on-miscalibration`): submitted, or suppressed while a job runs."""
        with self._check_lock:
            event = self.retrainer.request(reason)
            if event["action"] == "submitted" and self._metrics:
                self._metrics.triggers.inc()
            self.store.save_state(self.state)
            return event

    def _settle_active_job(self) -> str | None:
        return self.retrainer.settle()

    @property
    def jobs(self) -> JobsApi:
        """The Jobs API client, made on first use (never at start: no dashboard needed)."""
        if self._jobs is None:
            self._jobs = self._jobs_factory(self.settings)
        return self._jobs


def get_or_create_monitor(settings: Settings):
    """The cluster's one drift monitor (detached, restarted by Ray if its process dies)."""
    import ray

    actor = ray.remote(DriftMonitor).options(
        name=settings.monitor_actor_name,
        namespace=settings.monitor_namespace,
        get_if_exists=True,
        lifetime="detached",
        max_restarts=-1,
        num_cpus=settings.monitor_cpus,
        # Serve replicas and an operator may call at once; submit and latest are quick.
        max_concurrency=4,
        scheduling_strategy=near_the_jobs_api(),
    )
    return actor.remote(settings)


def find_monitor(settings: Settings):
    """The running monitor or None (never creates one)."""
    import ray

    try:
        return ray.get_actor(settings.monitor_actor_name, namespace=settings.monitor_namespace)
    except ValueError:
        return None
