"""Drift-triggered retraining: the policy that decides when, and the Ray Jobs API client (what
`ray job submit` talks to) that starts `jobs.retrain` with the settings the monitor runs with.

The policy: after `after_checks` consecutive drifted checks, submit one retraining job, and no
other while it runs; every decision (submitted, suppressed, failed, ended) is recorded in the
monitor's state and appended to its trigger log.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

from app.config import Settings
from app.monitoring.drift import DriftResult
from app.monitoring.store import MonitorState
from app.secrets import mask_credentials

log = logging.getLogger(__name__)

# A job in one of these states no longer blocks a new trigger. LOST: the Jobs API no longer
# knows it (the cluster it ran on was restarted).
LOST = "LOST"
TERMINAL_JOB_STATES = {"SUCCEEDED", "FAILED", "STOPPED", LOST}

# Trigger events kept in the state (and shown by status); the log file keeps them all.
_KEEP_TRIGGERS = 100


@dataclass(frozen=True)
class RetrainPolicy:
    """The retraining trigger's view of the settings."""

    # Consecutive drifted checks that submit retraining; 0 = never.
    after_checks: int


def retrain_policy(settings: Settings) -> RetrainPolicy:
    return RetrainPolicy(after_checks=settings.retrain_after_checks)


class JobsApi(Protocol):
    """What the trigger needs of the Jobs API (RayJobs; a stand-in in tests)."""

    def submit(self, reason: str) -> str: ...

    def status(self, job_id: str) -> str: ...


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Retrainer:
    """Applies the policy after each check. `jobs` gives the Jobs API client, asked only when a
    job is to be submitted or asked about (never at start: no dashboard needed)."""

    def __init__(
        self,
        policy: RetrainPolicy,
        state: MonitorState,
        jobs: Callable[[], JobsApi],
        trigger_log: Path,
    ) -> None:
        self.policy = policy
        self.state = state
        self._jobs = jobs
        self.trigger_log = Path(trigger_log)

    def after_check(self, result: DriftResult, model_version: str) -> dict[str, Any] | None:
        """Count the check; the trigger event when the policy fires, else None."""
        drifted = result.dataset_drift
        self.state.consecutive_drift = self.state.consecutive_drift + 1 if drifted else 0
        needed = self.policy.after_checks
        if not needed or self.state.consecutive_drift < needed:
            return None
        reason = (
            f"drift in {self.state.consecutive_drift} consecutive checks against champion "
            f"v{model_version}; latest drifted: "
            f"{', '.join(result.drifted_features) or 'predicted PD'}"
        )
        return self.request(reason)

    def request(self, reason: str) -> dict[str, Any]:
        """Submit retraining for `reason` (a drift run, a miscalibrated grade), unless the job
        of an earlier trigger still runs: then the event is `suppressed`, as for drift."""
        event: dict[str, Any] = {"at": _now(), "reason": reason}
        status = self.settle()
        if self.state.active_job:
            event |= {"action": "suppressed", "job": self.state.active_job, "status": status}
            log.info("retraining not triggered: job %s is %s", self.state.active_job, status)
        else:
            event |= self._submit(reason)
        self._log(event)
        return event

    def _submit(self, reason: str) -> dict[str, Any]:
        try:
            job = self._jobs().submit(reason)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("retraining submission failed: %s", error)
            return {"action": "failed", "error": error}
        self.state.active_job = job
        self.state.consecutive_drift = 0
        log.warning("retraining submitted as job %s: %s", job, reason)
        return {"action": "submitted", "job": job}

    def settle(self) -> str | None:
        """Clear the retraining job once it has ended in any state (or the Jobs API has lost
        it), recording how it ended; returns its state ("unknown (...)" if the API cannot be
        asked, which keeps it active: it may still be running)."""
        job = self.state.active_job
        if not job:
            return None
        try:
            status = self._jobs().status(job)
        except Exception as exc:
            return f"unknown ({type(exc).__name__})"
        if status in TERMINAL_JOB_STATES:
            self.state.active_job = None
            self._log({"at": _now(), "action": "ended", "job": job, "status": status})
        return status

    def _log(self, event: dict[str, Any]) -> None:
        self.state.triggers.append(event)
        self.state.triggers = self.state.triggers[-_KEEP_TRIGGERS:]
        with open(self.trigger_log, "a") as out:
            out.write(json.dumps(event) + "\n")


# --- the Ray Jobs API ------------------------------------------------------------------------


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as CREDIT_* variables for a job, secrets left out (the cluster has them).

    A job's environment is shown by the dashboard and the Jobs API, so a value with a password
    inside (a database URI) is left out too: the cluster's own environment supplies it."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None or isinstance(getattr(settings, name), SecretStr):
            continue
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        if mask_credentials(text) != text:
            continue
        env[f"CREDIT_{name.upper()}"] = text
    return env


def dashboard_url() -> str:
    """This cluster's dashboard (the Jobs API server), as the dashboard registered it in the
    GCS: a worker's own node object only knows the default port."""
    from ray._private.services import get_webui_url_from_internal_kv

    url = get_webui_url_from_internal_kv()
    if not url:
        raise RuntimeError("this Ray cluster runs no dashboard: the Jobs API is unavailable")
    return url if "://" in url else f"http://{url}"


class RayJobs:
    """Retraining through the Ray Jobs API (what `ray job submit` talks to)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client = None

    def client(self):
        from ray.job_submission import JobSubmissionClient

        if self._client is None:
            address = self.settings.retrain_jobs_address or dashboard_url()
            self._client = JobSubmissionClient(address)
        return self._client

    def submit(self, reason: str) -> str:
        entrypoint = self.settings.retrain_entrypoint or (
            f"{shlex.quote(sys.executable)} -m jobs.retrain"
        )
        entrypoint = f"{entrypoint} --reason {shlex.quote(reason)}"
        submission_id = f"credit-retrain-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        return self.client().submit_job(
            entrypoint=entrypoint,
            submission_id=submission_id,
            runtime_env={"env_vars": settings_env(self.settings)},
            metadata={"trigger": "drift"},
        )

    def status(self, job_id: str) -> str:
        """The job's state; LOST when the Jobs API answers that it does not know it. Any other
        failure (API unreachable) raises: the job may still be running."""
        try:
            return str(self.client().get_job_status(job_id).value)
        except RuntimeError as exc:
            if "status code 404" in str(exc):
                return LOST
            raise


def near_the_jobs_api():
    """Where the drift monitor runs: on the head when it has room, as the Jobs API that
    retraining goes through listens on the head's loopback in cluster.yaml (docs/cluster.md);
    elsewhere CREDIT_RETRAIN_JOBS_ADDRESS."""
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
