"""The audit history, against a real SQLite registry: events are appended, never overwritten,
and an unreadable one is named."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from app.training import audit, registry
from tests.utils.registry import NAME, audit_tags


def test_audit_events_are_appended_never_overwritten(sqlite_uri):
    client = MlflowClient(sqlite_uri, sqlite_uri)
    # An entry in the older key format (no random part) stays and keeps its place.
    old = audit_tags(sqlite_uri)
    client.set_registered_model_tag(NAME, "audit.000004", next(iter(old.values())))
    # Two writers that read the history at the same moment get two different keys.
    first = audit.next_audit_key(client, NAME)
    second = audit.next_audit_key(client, NAME)
    assert first != second and first.startswith("audit.000005.")
    audit.write_event(client, NAME, first, audit.new_event("a", None, "1", None, "one"))
    audit.write_event(client, NAME, second, audit.new_event("b", None, "1", None, "two"))
    tags = audit_tags(sqlite_uri)
    assert set(old) | {"audit.000004", first, second} == set(tags)
    actions = [e.action for e in registry.history(client, NAME)]
    assert actions[:4] == ["register", "register", "champion", "register"]
    assert sorted(actions[4:]) == ["a", "b"]


def test_an_unreadable_audit_entry_is_named(sqlite_uri):
    client = MlflowClient(sqlite_uri, sqlite_uri)
    client.set_registered_model_tag(NAME, "audit.000009.ffff", "{not json")
    with pytest.raises(registry.RegistryError, match=r"entry audit\.000009\.ffff is unreadable"):
        registry.history(client, NAME)
