"""MLflow tracking and registry: experiments, aliases (never stages), and an audit history."""

from __future__ import annotations

import getpass
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.config import Settings
from app.errors import CreditRiskError

CHAMPION = "champion"
CHALLENGER = "challenger"
AUDIT_PREFIX = "audit."


class RegistryError(CreditRiskError):
    """MLflow is unreachable, or the registry is not in the state an operation needs."""


def _describe(settings: Settings) -> str:
    uri = settings.mlflow_tracking_uri or ""
    # A database URI can carry a password: show the scheme and host part only.
    if "@" in uri:
        scheme, _, rest = uri.partition("://")
        uri = f"{scheme}://***@{rest.split('@', 1)[1]}"
    return f"MLflow at {uri}"


@contextmanager
def _quick_failures():
    """Fail fast on an unreachable server instead of MLflow's minutes of retries."""
    saved = {
        k: os.environ.get(k)
        for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    }
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "10"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def client(settings: Settings):
    """An MlflowClient for tracking and registry, after checking MLflow answers."""
    import mlflow
    from mlflow import MlflowClient

    if settings.mlflow_tracking_uri.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    mlflow_client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    with _quick_failures():
        try:
            mlflow_client.search_experiments(max_results=1)
        except Exception as exc:
            raise RegistryError(
                f"{_describe(settings)} is unreachable: {type(exc).__name__}: "
                f"{settings.redact(str(exc).splitlines()[0])[:300]}"
            ) from None
    return mlflow_client


def experiment_id(settings: Settings, mlflow_client) -> str:
    """The experiment, created with an absolute artifact location on first use."""
    found = mlflow_client.get_experiment_by_name(settings.mlflow_experiment)
    if found is not None:
        return found.experiment_id
    return mlflow_client.create_experiment(
        settings.mlflow_experiment, artifact_location=settings.mlflow_artifact_location
    )


def alias_version(mlflow_client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow_client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


# --- audit history ------------------------------------------------------------------------
# MLflow keeps no history of aliases; each change is written as a registered-model tag, so the
# history lives wherever the registry does (SQLite file, PostgreSQL behind a server).


@dataclass
class AuditEvent:
    time: str
    action: str
    alias: str | None
    version: str | None
    previous_version: str | None
    reason: str
    user: str

    def line(self) -> str:
        if self.alias is None:
            moved = f"v{self.version}"
        else:
            moved = f"{self.alias}: v{self.previous_version or '-'} -> v{self.version or '-'}"
        return f"{self.time}  {self.action:<10} {moved:<28} {self.reason}  ({self.user})"


def record(
    mlflow_client,
    name: str,
    action: str,
    alias: str | None,
    version: str | None,
    previous: str | None,
    reason: str,
) -> AuditEvent:
    event = AuditEvent(
        time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        action=action,
        alias=alias,
        version=version,
        previous_version=previous,
        reason=reason,
        user=getpass.getuser(),
    )
    sequence = len(history(mlflow_client, name)) + 1
    mlflow_client.set_registered_model_tag(
        name, f"{AUDIT_PREFIX}{sequence:06d}", json.dumps(event.__dict__)
    )
    return event


def history(mlflow_client, name: str) -> list[AuditEvent]:
    from mlflow.exceptions import MlflowException

    try:
        tags = mlflow_client.get_registered_model(name).tags
    except MlflowException:
        return []
    return [
        AuditEvent(**json.loads(tags[key]))
        for key in sorted(k for k in tags if k.startswith(AUDIT_PREFIX))
    ]


def move_alias(
    mlflow_client, name: str, alias: str, version: str, action: str, reason: str
) -> AuditEvent:
    """Point an alias at a version and record who, when and why."""
    previous = alias_version(mlflow_client, name, alias)
    mlflow_client.set_registered_model_alias(name, alias, version)
    return record(mlflow_client, name, action, alias, version, previous, reason)


def clear_alias(mlflow_client, name: str, alias: str, reason: str) -> AuditEvent | None:
    previous = alias_version(mlflow_client, name, alias)
    if previous is None:
        return None
    mlflow_client.delete_registered_model_alias(name, alias)
    return record(mlflow_client, name, "clear", alias, None, previous, reason)


def version_metrics(mlflow_client, name: str, version: str) -> dict[str, Any]:
    run_id = mlflow_client.get_model_version(name, version).run_id
    return dict(mlflow_client.get_run(run_id).data.metrics)
