"""The drift monitor: a named Ray actor that batches Evidently checks over live traffic.

Serving replicas send the feature rows of their answered decisions (fire and forget). The
actor spools every batch it receives to disk before acknowledging it, so a crash and restart
(Ray restarts it: `max_restarts=-1`) resumes with the same rows; a check consumes the spooled
rows and only then deletes them. Checks run on a background thread every `check_rows` rows or
`check_seconds` seconds, so receiving rows never waits for Evidently.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc

from app.config import Settings
from app.domain import CHAMPION
from app.monitoring.drift import PREDICTION, DriftConfig, DriftResult, compute_drift
from app.monitoring.jobs import TERMINAL_JOB_STATES, RayJobs
from app.training.reference import Reference, load_reference

log = logging.getLogger(__name__)

SAMPLE_RATE = "sample_rate"


def drift_config(settings: Settings) -> DriftConfig:
    return DriftConfig(
        num_method=settings.monitor_num_method,
        num_threshold=settings.monitor_num_threshold,
        cat_method=settings.monitor_cat_method,
        cat_threshold=settings.monitor_cat_threshold,
        min_drifted_features=settings.monitor_min_drifted_features,
        max_rows=settings.monitor_max_rows,
        seed=settings.seed,
    )


def window_schema() -> pa.Schema:
    """What the monitor keeps of a prediction-log record: time, version, PD and features."""
    from app.predictions.log import log_schema

    full = log_schema()
    keep = ["request_id", "logged_at", "model_version", PREDICTION]
    meta = {"request_id", "applicant_id", "variant", "shadow", "model_name", "decision"}
    meta |= {"reasons", "features_as_of"}
    names = keep + [n for n in full.names if n not in meta and n not in keep]
    # The share of the replica's traffic the row stands for (MonitorFeed samples under load).
    return pa.schema([full.field(n) for n in names] + [pa.field(SAMPLE_RATE, pa.float64())])


@dataclass
class MonitorState:
    """What must survive a restart besides the spool (written atomically after each check)."""

    checks: int = 0
    consecutive_drift: int = 0
    active_job: str | None = None
    triggers: list[dict[str, Any]] = field(default_factory=list)


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(tmp, path)


def budget_hold(cpu_seconds: float, budget: float) -> float:
    """Seconds the next check waits so checks average at most `budget` of one core."""
    return cpu_seconds / budget if budget > 0 else 0.0


def window_sample_rate(window: pd.DataFrame) -> float:
    """Rows checked per row answered: kept rows over the traffic they stand for."""
    if window.empty:
        return 1.0
    rates = window[SAMPLE_RATE].astype("float64").fillna(1.0).clip(lower=1e-9)
    return round(float(len(rates) / (1.0 / rates).sum()), 4)


class DriftMonitor:
    """Runs as a Ray actor (see `get_or_create_monitor`); also usable in-process."""

    def __init__(
        self,
        settings: Settings,
        reference_loader: Callable[[Settings], Reference] = load_reference,
        jobs_factory: Callable[[Settings], Any] = RayJobs,
        start: bool = True,
    ) -> None:
        self.settings = settings
        self.config = drift_config(settings)
        self._load_reference = reference_loader
        self._jobs_factory = jobs_factory
        self._jobs = None
        self.root = Path(settings.monitor_dir)
        self.spool = self.root / "spool"
        self.results = self.root / "results"
        self.reports = self.root / "reports"
        for folder in (self.spool, self.results, self.reports):
            folder.mkdir(parents=True, exist_ok=True)
        self.schema = window_schema()
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()
        # (spool file, table) in arrival order; the files are the durable copy.
        self._batches: list[tuple[Path, pa.Table]] = []
        self._rows = 0
        self.received = 0
        self.dropped = 0
        self.recovered = 0
        self.last_error: str | None = None
        self._last_check = time.monotonic()
        self._not_before = 0.0  # the CPU budget's hold on the next check (monotonic time)
        self._reference: Reference | None = None
        self.state = self._load_state()
        self._latest = self._load_latest()
        self._recover_spool()
        self._metrics = _Metrics.create()
        self._stop = threading.Event()
        if start:
            threading.Thread(target=self._loop, name="drift-checks", daemon=True).start()

    # --- receiving rows ------------------------------------------------------------------
    def submit(self, records: list[dict[str, Any]]) -> int:
        """Take decision records (prediction-log dicts); returns how many were kept."""
        if not records:
            return 0
        table = pa.Table.from_pylist(
            [{k: r.get(k) for k in self.schema.names} for r in records], schema=self.schema
        )
        with self._lock:
            path = self.spool / f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}.arrow"
            self._write_spool(path, table)
            self._batches.append((path, table))
            self._rows += table.num_rows
            self.received += table.num_rows
            self._enforce_bound()
        return table.num_rows

    def _write_spool(self, path: Path, table: pa.Table) -> None:
        # Renamed into place: a crash mid-write leaves a hidden temp, never a torn batch. No
        # fsync: the rows must survive the actor process dying, which the page cache does.
        tmp = path.with_name(f".{path.name}.tmp")
        with ipc.new_file(str(tmp), table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, path)

    def _enforce_bound(self) -> None:
        while self._rows > self.settings.monitor_max_buffer_rows and len(self._batches) > 1:
            path, table = self._batches.pop(0)
            path.unlink(missing_ok=True)
            self._rows -= table.num_rows
            self.dropped += table.num_rows
            if self._metrics:
                self._metrics.dropped.inc(table.num_rows)

    def _recover_spool(self) -> None:
        for path in sorted(self.spool.glob("*.arrow")):
            try:
                with ipc.open_file(str(path)) as reader:
                    table = reader.read_all()
            except Exception as exc:  # a corrupt batch is set aside, not fatal
                log.warning("unreadable spool batch %s set aside: %s", path.name, exc)
                path.rename(path.with_suffix(".bad"))
                continue
            if SAMPLE_RATE not in table.column_names:  # spooled before rows carried a rate
                table = table.append_column(SAMPLE_RATE, pa.array([1.0] * table.num_rows))
            self._batches.append((path, table.cast(self.schema)))
            self._rows += table.num_rows
            self.recovered += table.num_rows
        if self.recovered:
            log.info("resumed with %d spooled rows", self.recovered)

    # --- answers -------------------------------------------------------------------------
    def latest(self) -> dict[str, Any] | None:
        return self._latest

    def status(self) -> dict[str, Any]:
        return {
            "buffered_rows": self._rows,
            # The answered decisions those rows stand for (more than them when sampled).
            "buffered_represented_rows": self._represented(),
            "received_rows": self.received,
            "recovered_rows": self.recovered,
            "dropped_rows": self.dropped,
            "checks": self.state.checks,
            "consecutive_drift": self.state.consecutive_drift,
            "active_job": self.state.active_job,
            "triggers": self.state.triggers[-10:],
            "reference_version": self._reference.model_version if self._reference else None,
            "last_error": self.last_error,
            "next_check_in_s": round(max(0.0, self._not_before - time.monotonic()), 1),
            "pid": os.getpid(),
        }

    def _represented(self) -> int:
        with self._lock:
            tables = [t for _, t in self._batches]
        rates = [t.column(SAMPLE_RATE).to_numpy(zero_copy_only=False) for t in tables]
        return round(sum(float((1.0 / np.nan_to_num(r, nan=1.0)).sum()) for r in rates))

    def check_now(self) -> dict[str, Any] | None:
        """Check whatever is buffered now (operators and tests); None when nothing is."""
        return self._check()

    def stop(self) -> None:
        self._stop.set()

    # --- checking ------------------------------------------------------------------------
    def _due(self) -> bool:
        if time.monotonic() < self._not_before:
            return False
        rows = self._rows
        if rows >= self.settings.monitor_check_rows:
            return True
        waited = time.monotonic() - self._last_check
        settings = self.settings
        return waited >= settings.monitor_check_seconds and rows >= settings.monitor_min_rows

    def _loop(self) -> None:
        backoff = 0.0
        republished = time.monotonic()
        while not self._stop.wait(0.5 + backoff):
            if self._metrics and self._latest and time.monotonic() - republished >= 10:
                republished = time.monotonic()
                try:
                    self._metrics.publish(DriftResult.from_dict(self._latest))
                except Exception as exc:  # a metric must never stop the checks
                    log.warning("drift gauges not published: %s", exc)
            if not self._due():
                continue
            cpu = time.process_time()
            try:
                self._check()
                backoff = 0.0
                self._not_before = time.monotonic() + budget_hold(
                    time.process_time() - cpu, self.settings.monitor_cpu_budget
                )
            except Exception as exc:  # keep the rows, report, retry later
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("drift check failed (rows kept): %s", self.last_error)
                if self._metrics:
                    self._metrics.failures.inc()
                backoff = min(60.0, max(2.0, backoff * 2))
            self._last_check = time.monotonic()

    def _reference_now(self) -> Reference:
        """The champion's reference, reloaded only when the champion changes."""
        from app.training import registry

        client = registry.client(self.settings)
        champion = registry.alias_version(client, self.settings.model_name, CHAMPION)
        if self._reference is None or champion != self._reference.model_version:
            self._reference = self._load_reference(self.settings)
        return self._reference

    def _check(self) -> dict[str, Any] | None:
        with self._check_lock:
            with self._lock:
                batches = list(self._batches)
            if not batches:
                return None
            reference = self._reference_now()
            window = pa.concat_tables([t for _, t in batches]).to_pandas()
            result, snapshot = compute_drift(
                reference.frame,
                window,
                reference.numeric,
                reference.categorical,
                self.config,
                with_report=True,
            )
            result.model_version = reference.model_version
            times = pd.to_datetime(window["logged_at"], utc=True).dropna()
            if not times.empty:
                result.window_start = times.min().isoformat()
                result.window_end = times.max().isoformat()
            self.state.checks += 1
            result.extra["check"] = self.state.checks
            result.extra[SAMPLE_RATE] = window_sample_rate(window)
            # A finished retraining job is cleared at every check, drift or not.
            self._settle_active_job()
            trigger = self._after_check(result, reference)
            if trigger:
                result.extra["trigger"] = trigger
            payload = result.to_dict()
            self._store(payload, snapshot)
            self._publish(result, reference)
            # Only now are the rows done with: drop exactly the batches this check used.
            used = {p for p, _ in batches}
            with self._lock:
                self._batches = [(p, t) for p, t in self._batches if p not in used]
                self._rows = sum(t.num_rows for _, t in self._batches)
            for path in used:
                path.unlink(missing_ok=True)
            self._latest = payload
            self.last_error = None
            return payload

    def _store(self, payload: dict[str, Any], snapshot) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"drift-{stamp}-{payload['extra']['check']:06d}"
        report = self.reports / f"{name}.html"
        snapshot.save_html(str(report.with_name(f".{report.name}.tmp")))
        os.replace(report.with_name(f".{report.name}.tmp"), report)
        payload["extra"]["report"] = str(report)
        _write_json(self.results / f"{name}.json", payload)
        _write_json(self.root / "latest.json", payload)
        _write_json(self.root / "state.json", self.state.__dict__)
        # Keep the newest reports only; the JSON records are small and all kept.
        for old in sorted(self.reports.glob("drift-*.html"))[: -self.settings.monitor_keep_reports]:
            old.unlink(missing_ok=True)

    def _publish(self, result: DriftResult, reference: Reference) -> None:
        if self._metrics:
            self._metrics.record(result)
        try:  # the champion's run carries its drift history; MLflow down must not stop checks
            from app.training import registry

            client = registry.client(self.settings)
            now = int(time.time() * 1000)
            step = self.state.checks
            values = {
                "drift_detected": float(result.dataset_drift),
                "drift_share": result.drift_share,
                "drift_rows": float(result.rows),
            }
            if result.prediction:
                values["drift_pd_score"] = result.prediction.score
            for key, value in values.items():
                client.log_metric(reference.run_id, key, value, timestamp=now, step=step)
        except Exception as exc:
            log.warning("drift result not logged to MLflow: %s", exc)

    def _after_check(self, result: DriftResult, reference: Reference) -> dict[str, Any] | None:
        drifted = result.dataset_drift
        self.state.consecutive_drift = self.state.consecutive_drift + 1 if drifted else 0
        needed = self.settings.retrain_after_checks
        if not needed or self.state.consecutive_drift < needed:
            return None
        reason = (
            f"drift in {self.state.consecutive_drift} consecutive checks against champion "
            f"v{reference.model_version}; latest drifted: "
            f"{', '.join(result.drifted_features) or 'predicted PD'}"
        )
        event: dict[str, Any] = {"at": datetime.now(UTC).isoformat(), "reason": reason}
        status = self._settle_active_job()
        if self.state.active_job:
            event |= {"action": "suppressed", "job": self.state.active_job, "status": status}
            log.info("retraining not triggered: job %s is %s", self.state.active_job, status)
            self._log_trigger(event)
            return event
        try:
            job = self.jobs.submit(reason)
        except Exception as exc:
            event |= {"action": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]}
            log.warning("retraining submission failed: %s", event["error"])
            self._log_trigger(event)
            return event
        self.state.active_job = job
        self.state.consecutive_drift = 0
        event |= {"action": "submitted", "job": job}
        log.warning("retraining submitted as job %s: %s", job, reason)
        self._log_trigger(event)
        if self._metrics:
            self._metrics.triggers.inc()
        return event

    @property
    def jobs(self):
        """The Jobs API client, made on first use (never at start: no dashboard needed)."""
        if self._jobs is None:
            self._jobs = self._jobs_factory(self.settings)
        return self._jobs

    def _settle_active_job(self) -> str | None:
        """Clear the retraining job once it has ended in any state (or the Jobs API has lost
        it), recording how it ended; returns its state ("unknown (...)" if the API cannot be
        asked, which keeps it active: it may still be running)."""
        job = self.state.active_job
        if not job:
            return None
        try:
            status = self.jobs.status(job)
        except Exception as exc:
            return f"unknown ({type(exc).__name__})"
        if status in TERMINAL_JOB_STATES:
            self.state.active_job = None
            event = {"at": datetime.now(UTC).isoformat(), "action": "ended", "job": job}
            self._log_trigger(event | {"status": status})
        return status

    def _log_trigger(self, event: dict[str, Any]) -> None:
        self.state.triggers.append(event)
        self.state.triggers = self.state.triggers[-100:]
        with open(self.root / "triggers.jsonl", "a") as out:
            out.write(json.dumps(event) + "\n")

    def _load_state(self) -> MonitorState:
        path = self.root / "state.json"
        if path.exists():
            try:
                return MonitorState(**json.loads(path.read_text()))
            except Exception as exc:
                log.warning("monitor state unreadable, starting afresh: %s", exc)
        return MonitorState()

    def _load_latest(self) -> dict[str, Any] | None:
        path = self.root / "latest.json"
        try:
            return json.loads(path.read_text()) if path.exists() else None
        except Exception:
            return None


@dataclass
class _Metrics:
    """Prometheus metrics through Ray's exporter (so: `ray_` prefixed when scraped)."""

    checks: Any
    detected: Any
    share: Any
    feature_score: Any
    pd_score: Any
    rows: Any
    dropped: Any
    failures: Any
    triggers: Any

    @classmethod
    def create(cls) -> _Metrics | None:
        import ray

        if not ray.is_initialized():
            return None
        from ray.util.metrics import Counter, Gauge

        return cls(
            checks=Counter("credit_drift_checks_total", "Drift checks run."),
            detected=Gauge("credit_drift_detected", "1 if the latest check found dataset drift."),
            share=Gauge("credit_drift_share", "Share of features drifted in the latest check."),
            feature_score=Gauge(
                "credit_drift_feature_score",
                "Latest drift score per feature (method per feature; see threshold).",
                tag_keys=("feature", "method"),
            ),
            pd_score=Gauge("credit_drift_prediction_score", "Latest drift score of the PD."),
            rows=Gauge("credit_drift_window_rows", "Rows in the latest check's window."),
            dropped=Counter("credit_drift_rows_dropped_total", "Rows dropped: buffer full."),
            failures=Counter("credit_drift_check_failures_total", "Checks that failed."),
            triggers=Counter("credit_drift_retrain_triggers_total", "Retraining jobs submitted."),
        )

    def record(self, result: DriftResult) -> None:
        self.checks.inc()
        self.publish(result)

    def publish(self, result: DriftResult) -> None:
        """Set the gauges; repeated while idle, as Ray drops a gauge nobody sets for a while."""
        self.detected.set(float(result.dataset_drift))
        self.share.set(result.drift_share)
        self.rows.set(result.rows)
        for feature in result.features:
            self.feature_score.set(
                feature.score, tags={"feature": feature.column, "method": feature.method}
            )
        if result.prediction:
            self.pd_score.set(result.prediction.score)


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
        scheduling_strategy=_near_the_jobs_api(),
    )
    return actor.remote(settings)


def _near_the_jobs_api():
    """On the head when it has room: the Jobs API that retraining goes through listens on the
    head's loopback in cluster.yaml (docs/cluster.md); elsewhere CREDIT_RETRAIN_JOBS_ADDRESS."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = next(
        (
            n["NodeID"]
            for n in ray.nodes()
            if n["Alive"] and "node:__internal_head__" in n["Resources"]
        ),
        None,
    )
    return NodeAffinitySchedulingStrategy(head, soft=True) if head else "DEFAULT"


def find_monitor(settings: Settings):
    """The running monitor or None (never creates one)."""
    import ray

    try:
        return ray.get_actor(settings.monitor_actor_name, namespace=settings.monitor_namespace)
    except ValueError:
        return None
