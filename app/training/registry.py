"""MLflow model registry: aliases (never stages), versions registered with their digests, and
every alias or traffic change recorded in the audit history (app.training.audit).

The names callers use for the MLflow connection and the history (`client`, `RegistryError`,
`record`, `history`, ...) are re-exported here, so `registry.<name>` stays the one way in.
"""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.domain import CHALLENGER, CHAMPION
from app.training import artifacts
from app.training.audit import (
    AUDIT_PREFIX,
    AuditEvent,
    aliases_at,
    event_time,
    history,
    new_event,
    next_audit_key,
    record,
    write_event,
)
from app.training.tracking import (
    RegistryError,
    client,
    experiment_id,
    failures_named,
    registered_model,
    registry_write,
    tracking_uri,
)

__all__ = [
    "AUDIT_PREFIX",
    "TRAFFIC_TAG",
    "AuditEvent",
    "RegistryError",
    "alias_version",
    "aliases",
    "aliases_at",
    "clear_alias",
    "client",
    "event_time",
    "experiment_id",
    "failures_named",
    "history",
    "move_alias",
    "record",
    "register",
    "register_version",
    "set_traffic",
    "tracking_uri",
    "version_metrics",
    "version_tags",
]

# A version tag that moves live traffic (routing.effective_config): `shadow` or `weight=0.1`.
TRAFFIC_TAG = "traffic"


def aliases(mlflow_client, name: str) -> dict[str, str]:
    """Every alias of the registered model -> its version; {} when the model does not exist."""
    model = registered_model(mlflow_client, name, f"reading {name!r}")
    if model is None:
        return {}
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def alias_version(mlflow_client, name: str, alias: str) -> str | None:
    """The version `alias` names; None only when MLflow says the alias (or model) is not set."""
    return aliases(mlflow_client, name).get(alias)


def move_alias(
    mlflow_client, name: str, alias: str, version: str, action: str, reason: str
) -> AuditEvent:
    """Point an alias at a version and record who, when and why.

    Everything that can be read is read before the alias moves, so a registry that cannot be
    read leaves the alias where it was.
    """
    previous = alias_version(mlflow_client, name, alias)
    key = next_audit_key(mlflow_client, name)
    registry_write(
        mlflow_client,
        f"moving {alias} of {name!r} to v{version}",
        mlflow_client.set_registered_model_alias,
        name,
        alias,
        version,
    )
    return write_event(
        mlflow_client, name, key, new_event(action, alias, version, previous, reason)
    )


def clear_alias(mlflow_client, name: str, alias: str, reason: str) -> AuditEvent | None:
    previous = alias_version(mlflow_client, name, alias)
    if previous is None:
        return None
    key = next_audit_key(mlflow_client, name)
    registry_write(
        mlflow_client,
        f"clearing {alias} of {name!r}",
        mlflow_client.delete_registered_model_alias,
        name,
        alias,
    )
    return write_event(mlflow_client, name, key, new_event("clear", alias, None, previous, reason))


def register_version(
    settings: Settings, mlflow_client, model_uri: str, tags: dict[str, str], why: str
) -> str:
    """A new version of the model logged at `model_uri`, with a digest of its files.

    The files are read back from the artifact store and digested, and the digest goes on as
    tags in the same call that creates the version, so no version ever lacks one; every load
    checks it (pyfunc.load_registered). A `traffic` tag is recorded in the audit history.
    """
    # Imported here: mlflow costs ~11 s to import, which readers of the registry module skip.
    import mlflow

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


def register(
    settings: Settings,
    mlflow_client,
    model_uri: str,
    run_id: str,
    metrics: dict[str, float],
    checks: dict[str, bool],
    version_tags: dict[str, str] | None,
) -> tuple[str, str]:
    """Register a model that passed the gates; champion only if the registry says there is
    none, else challenger. -> (version, alias).

    The champion is looked up before anything is written: a registry that cannot answer
    (down, 5xx) raises RegistryError, so neither a new version nor an alias appears and the
    champion stays what it was.
    """
    name = settings.model_name
    champion = alias_version(mlflow_client, name, CHAMPION)
    # Tags go on at registration, before any alias names the version, so a replica that
    # loads it sees them (serving reads `traffic` once per loaded version).
    version = register_version(
        settings, mlflow_client, model_uri, version_tags or {}, f"run {run_id}"
    )
    why = f"run {run_id}, test AUC {metrics['test_auc']:.4f}"
    record(mlflow_client, name, "register", None, version, None, why)
    if champion is None:
        alias, reason = CHAMPION, "first model to pass the gates"
    else:
        alias, reason = CHALLENGER, f"passed gates: {', '.join(checks)}"
    # The audit action is the alias given: "champion" or "challenger".
    move_alias(mlflow_client, name, alias, version, alias, reason)
    return version, alias


def set_traffic(mlflow_client, name: str, version: str, value: str | None, reason: str):
    """Set (or with None, remove) a version's `traffic` tag, recorded in the audit history:
    the tag moves live traffic (within `serve_max_tag_traffic`), so every change is audited."""
    previous = version_tags(mlflow_client, name, version).get(TRAFFIC_TAG)
    key = next_audit_key(mlflow_client, name)
    if value is None:
        call, args = mlflow_client.delete_model_version_tag, (name, version, TRAFFIC_TAG)
    else:
        call, args = mlflow_client.set_model_version_tag, (name, version, TRAFFIC_TAG, value)
    registry_write(mlflow_client, f"setting {TRAFFIC_TAG} of {name} v{version}", call, *args)
    what = f"{TRAFFIC_TAG}: {previous or '-'} -> {value or '-'}"
    return write_event(
        mlflow_client, name, key, new_event("traffic", None, version, None, f"{what}; {reason}")
    )


def version_tags(mlflow_client, name: str, version: str) -> dict[str, str]:
    with failures_named(tracking_uri(mlflow_client), f"reading {name} v{version}"):
        return dict(mlflow_client.get_model_version(name, version).tags)


def version_metrics(mlflow_client, name: str, version: str) -> dict[str, Any]:
    with failures_named(tracking_uri(mlflow_client), f"reading the metrics of {name} v{version}"):
        run_id = mlflow_client.get_model_version(name, version).run_id
        return dict(mlflow_client.get_run(run_id).data.metrics)
