"""The registry's audit history: who moved which alias or traffic tag, when and why.

MLflow keeps no history of aliases; each change is written as a registered-model tag, so the
history lives wherever the registry does (SQLite file, PostgreSQL behind a server).
"""

from __future__ import annotations

import getpass
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from app.training.tracking import (
    RegistryError,
    quick_failures,
    registered_model,
    tracking_uri,
    unavailable,
)

AUDIT_PREFIX = "audit."


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
    model = registered_model(mlflow_client, name, "reading the audit history")
    tags = model.tags if model is not None else {}
    return {k: v for k, v in tags.items() if k.startswith(AUDIT_PREFIX)}


def next_audit_key(mlflow_client, name: str) -> str:
    """A tag key no event holds yet: the next sequence number plus a random part, so two
    writers that read the same history at once still write two events, never one over the
    other. An unreadable history raises: a guessed sequence would overwrite event 1."""
    existing = _audit_tags(mlflow_client, name)
    sequence = max((_audit_key_order(k)[0] for k in existing), default=0) + 1
    key = f"{AUDIT_PREFIX}{sequence:06d}.{secrets.token_hex(4)}"
    if key in existing:  # 2**-32; refuse rather than overwrite
        raise RegistryError(f"audit history of {name!r} already holds {key}: not overwritten")
    return key


def write_event(mlflow_client, name: str, key: str, event: AuditEvent) -> AuditEvent:
    """`event` written under `key` (from next_audit_key)."""
    try:
        with quick_failures():
            mlflow_client.set_registered_model_tag(name, key, json.dumps(event.__dict__))
    except Exception as exc:
        raise unavailable(
            tracking_uri(mlflow_client), exc, f"recording {event.action} of {name!r}"
        ) from None
    return event


def new_event(action, alias, version, previous, reason) -> AuditEvent:
    """An event stamped now, by the current user."""
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
    key = next_audit_key(mlflow_client, name)
    event = new_event(action, alias, version, previous, reason)
    return write_event(mlflow_client, name, key, event)


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


def event_time(event: AuditEvent) -> datetime:
    return datetime.fromisoformat(event.time)


def aliases_at(events: list[AuditEvent], at: datetime) -> dict[str, AuditEvent]:
    """Which version each alias named at `at` (timezone-aware), as the event that last moved
    it then: MLflow keeps aliases' current values only, so they are replayed from the history.
    An alias removed by then (its event's version None) is left out."""
    named: dict[str, AuditEvent] = {}
    for event in events:  # oldest first, as history() returns them
        if event_time(event) > at:
            break
        if event.alias is not None:
            named[event.alias] = event
    return {alias: e for alias, e in named.items() if e.version is not None}
