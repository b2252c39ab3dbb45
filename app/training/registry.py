"""MLflow tracking and registry: experiments, aliases (never stages), and an audit history."""

from __future__ import annotations

import getpass
import json
import os
import re
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.config import Settings
from app.errors import CreditRiskError

AUDIT_PREFIX = "audit."
# A version tag that moves live traffic (routing.effective_config): `shadow` or `weight=0.1`.
TRAFFIC_TAG = "traffic"


class RegistryError(CreditRiskError):
    """MLflow is unreachable, or the registry is not in the state an operation needs."""


def _describe(settings: Settings) -> str:
    # A database URI can carry a password: show the scheme and host part only.
    return f"MLflow at {_mask_urls(settings.mlflow_tracking_uri or '')}"


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


NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


def unavailable(uri: str, exc: BaseException, doing: str) -> RegistryError:
    """The one-line error for a registry call that failed for any reason but "not found"."""
    text = str(exc).strip()
    detail = _mask_urls(text.splitlines()[0] if text else "")[:300]
    return RegistryError(
        f"MLflow at {_mask_urls(uri)} is unreachable or erroring while {doing}: "
        f"{type(exc).__name__}: {detail}"
    )


def _mask_urls(text: str) -> str:
    """Credentials in any URI (scheme://user:password@host) shown as ***."""
    return re.sub(r"://[^/@\s]+@", "://***@", text)


@contextmanager
def failures_named(uri: str, doing: str, quick: bool = True):
    """MLflow failures inside as one RegistryError line (not a traceback, not "absent").
    `quick`: no retries and a short timeout (not for large artifact uploads)."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        with _quick_failures() if quick else nullcontext():
            yield
    except (MlflowException, requests.RequestException) as exc:
        raise unavailable(uri, exc, doing) from None


def tracking_uri(mlflow_client) -> str:
    return str(getattr(mlflow_client, "_registry_uri", "") or "")


def _registered_model(mlflow_client, name: str, doing: str):
    """The registered model, or None when MLflow says it does not exist.

    Only MLflow's "does not exist" means absent: a connection error, a timeout, a 4xx/5xx or a
    database error behind the server raises RegistryError, so no caller reads an unreachable
    registry as "no champion" or "no history".
    """
    from mlflow.exceptions import MlflowException

    try:
        with _quick_failures():
            return mlflow_client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == NOT_FOUND:
            return None
        raise unavailable(tracking_uri(mlflow_client), exc, doing) from None
    except Exception as exc:  # requests/SQLAlchemy errors that MLflow did not wrap
        raise unavailable(tracking_uri(mlflow_client), exc, doing) from None


def aliases(mlflow_client, name: str) -> dict[str, str]:
    """Every alias of the registered model -> its version; {} when the model does not exist."""
    model = _registered_model(mlflow_client, name, f"reading {name!r}")
    if model is None:
        return {}
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def alias_version(mlflow_client, name: str, alias: str) -> str | None:
    """The version `alias` names; None only when MLflow says the alias (or model) is not set."""
    return aliases(mlflow_client, name).get(alias)


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


def _audit_key_order(key: str) -> tuple[int, str]:
    # "audit.000007" (older releases) and "audit.000007.<random>" sort by their sequence.
    sequence, _, suffix = key.removeprefix(AUDIT_PREFIX).partition(".")
    return (int(sequence) if sequence.isdigit() else 0, suffix)


def _audit_tags(mlflow_client, name: str) -> dict[str, str]:
    """The model's audit.* tags; {} for a model not registered yet; RegistryError otherwise."""
    model = _registered_model(mlflow_client, name, "reading the audit history")
    tags = model.tags if model is not None else {}
    return {k: v for k, v in tags.items() if k.startswith(AUDIT_PREFIX)}


def _next_audit_key(mlflow_client, name: str) -> str:
    """A tag key no event holds yet: the next sequence number plus a random part, so two
    writers that read the same history at once still write two events, never one over the
    other. An unreadable history raises: a guessed sequence would overwrite event 1."""
    import secrets

    existing = _audit_tags(mlflow_client, name)
    sequence = max((_audit_key_order(k)[0] for k in existing), default=0) + 1
    key = f"{AUDIT_PREFIX}{sequence:06d}.{secrets.token_hex(4)}"
    if key in existing:  # 2**-32; refuse rather than overwrite
        raise RegistryError(f"audit history of {name!r} already holds {key}: not overwritten")
    return key


def _write_event(mlflow_client, name: str, key: str, event: AuditEvent) -> AuditEvent:
    try:
        with _quick_failures():
            mlflow_client.set_registered_model_tag(name, key, json.dumps(event.__dict__))
    except Exception as exc:
        raise unavailable(
            tracking_uri(mlflow_client), exc, f"recording {event.action} of {name!r}"
        ) from None
    return event


def _event(action, alias, version, previous, reason) -> AuditEvent:
    return AuditEvent(
        time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        action=action,
        alias=alias,
        version=version,
        previous_version=previous,
        reason=reason,
        user=getpass.getuser(),
    )


def record(
    mlflow_client,
    name: str,
    action: str,
    alias: str | None,
    version: str | None,
    previous: str | None,
    reason: str,
) -> AuditEvent:
    """Append one event to the audit history (never replacing one)."""
    key = _next_audit_key(mlflow_client, name)
    event = _event(action, alias, version, previous, reason)
    return _write_event(mlflow_client, name, key, event)


def history(mlflow_client, name: str) -> list[AuditEvent]:
    """The audit events, oldest first; [] for a model not registered yet; RegistryError when
    the registry cannot be read or an event is unreadable."""
    tags = _audit_tags(mlflow_client, name)
    events = []
    for key in sorted(tags, key=_audit_key_order):
        try:
            events.append(AuditEvent(**json.loads(tags[key])))
        except (ValueError, TypeError) as exc:
            raise RegistryError(
                f"audit history of {name!r}: entry {key} is unreadable ({type(exc).__name__})"
            ) from None
    return events


def _registry_write(mlflow_client, doing: str, call, *args) -> None:
    try:
        with _quick_failures():
            call(*args)
    except Exception as exc:
        raise unavailable(tracking_uri(mlflow_client), exc, doing) from None


def move_alias(
    mlflow_client, name: str, alias: str, version: str, action: str, reason: str
) -> AuditEvent:
    """Point an alias at a version and record who, when and why.

    Everything that can be read is read before the alias moves, so a registry that cannot be
    read leaves the alias where it was.
    """
    previous = alias_version(mlflow_client, name, alias)
    key = _next_audit_key(mlflow_client, name)
    _registry_write(
        mlflow_client,
        f"moving {alias} of {name!r} to v{version}",
        mlflow_client.set_registered_model_alias,
        name,
        alias,
        version,
    )
    return _write_event(mlflow_client, name, key, _event(action, alias, version, previous, reason))


def clear_alias(mlflow_client, name: str, alias: str, reason: str) -> AuditEvent | None:
    previous = alias_version(mlflow_client, name, alias)
    if previous is None:
        return None
    key = _next_audit_key(mlflow_client, name)
    _registry_write(
        mlflow_client,
        f"clearing {alias} of {name!r}",
        mlflow_client.delete_registered_model_alias,
        name,
        alias,
    )
    return _write_event(mlflow_client, name, key, _event("clear", alias, None, previous, reason))


def register_version(
    settings: Settings, mlflow_client, model_uri: str, tags: dict[str, str], why: str
) -> str:
    """A new version of the model logged at `model_uri`, with a digest of its files.

    The files are read back from the artifact store and digested, and the digest goes on as
    tags in the same call that creates the version, so no version ever lacks one; every load
    checks it (pyfunc.load_registered). A `traffic` tag is recorded in the audit history.
    """
    import mlflow

    from app.training import artifacts

    name = settings.model_name
    with failures_named(settings.mlflow_tracking_uri, f"registering {name!r} ({why})", quick=False):
        with artifacts.downloaded(model_uri) as local:
            digest = artifacts.digest_tags(local)
        version = str(mlflow.register_model(model_uri, name, tags={**tags, **digest}).version)
    if tags.get(TRAFFIC_TAG):
        record(
            mlflow_client,
            name,
            "traffic",
            None,
            version,
            None,
            f"{TRAFFIC_TAG}={tags[TRAFFIC_TAG]} at registration ({why})",
        )
    return version


def set_traffic(mlflow_client, name: str, version: str, value: str | None, reason: str):
    """Set (or with None, remove) a version's `traffic` tag, recorded in the audit history:
    the tag moves live traffic (within `serve_max_tag_traffic`), so every change is audited."""
    previous = version_tags(mlflow_client, name, version).get(TRAFFIC_TAG)
    key = _next_audit_key(mlflow_client, name)
    if value is None:
        call, args = mlflow_client.delete_model_version_tag, (name, version, TRAFFIC_TAG)
    else:
        call, args = mlflow_client.set_model_version_tag, (name, version, TRAFFIC_TAG, value)
    _registry_write(mlflow_client, f"setting {TRAFFIC_TAG} of {name} v{version}", call, *args)
    what = f"{TRAFFIC_TAG}: {previous or '-'} -> {value or '-'}"
    return _write_event(
        mlflow_client, name, key, _event("traffic", None, version, None, f"{what}; {reason}")
    )


def version_tags(mlflow_client, name: str, version: str) -> dict[str, str]:
    with failures_named(tracking_uri(mlflow_client), f"reading {name} v{version}"):
        return dict(mlflow_client.get_model_version(name, version).tags)


def version_metrics(mlflow_client, name: str, version: str) -> dict[str, Any]:
    with failures_named(tracking_uri(mlflow_client), f"reading the metrics of {name} v{version}"):
        run_id = mlflow_client.get_model_version(name, version).run_id
        return dict(mlflow_client.get_run(run_id).data.metrics)
