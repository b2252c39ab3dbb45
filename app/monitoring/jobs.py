"""Retraining through the Ray Jobs API (what `ray job submit` talks to): the drift monitor's
way of starting `jobs.retrain` with the settings it runs with."""

from __future__ import annotations

import json
import shlex
import sys
import uuid
from datetime import UTC, datetime

from app.config import Settings

# A job in one of these states no longer blocks a new trigger. LOST: the Jobs API no longer
# knows it (the cluster it ran on was restarted).
LOST = "LOST"
TERMINAL_JOB_STATES = {"SUCCEEDED", "FAILED", "STOPPED", LOST}


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as CREDIT_* variables for a job, secrets left out (the cluster has them).

    A job's environment is shown by the dashboard and the Jobs API, so a value with a password
    inside (a database URI) is left out too: the cluster's own environment supplies it."""
    from pydantic import SecretStr

    from app.config import mask_credentials

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
