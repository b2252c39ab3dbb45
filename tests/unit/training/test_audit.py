"""The audit history, against a real SQLite registry: events are appended, never overwritten,
and an unreadable one is named."""

from __future__ import annotations

from datetime import datetime

import pytest
from mlflow import MlflowClient

from app.errors import CreditRiskError
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


def event(time, action, alias, version, previous=None):
    return registry.AuditEvent(time, action, alias, version, previous, "why", "ana")


def test_which_version_each_alias_named_at_a_time_is_replayed_from_the_history():
    events = [
        event("2026-11-01T09:00:00.000000Z", "register", None, "1"),
        event("2026-11-01T09:00:01.000000Z", "champion", "champion", "1"),
        event("2026-11-10T12:00:00.000000Z", "challenger", "challenger", "2"),
        event("2026-11-20T08:00:00.000000Z", "promote", "champion", "2", "1"),
        event("2026-11-20T08:00:00.500000Z", "clear", "challenger", None, "2"),
        event("2026-11-25T17:30:00.000000Z", "rollback", "champion", "1", "2"),
    ]

    def at(text):
        named = registry.aliases_at(events, datetime.fromisoformat(text))
        return {alias: e.version for alias, e in named.items()}

    assert at("2026-10-31T00:00:00+00:00") == {}
    assert at("2026-11-01T09:00:01+00:00") == {"champion": "1"}  # an event at T counts
    assert at("2026-11-15T00:00:00+00:00") == {"champion": "1", "challenger": "2"}
    assert at("2026-11-21T00:00:00+00:00") == {"champion": "2"}  # the challenger was cleared
    assert at("2026-11-26T00:00:00+01:00") == {"champion": "1"}  # 25 Nov 23:00 UTC


def test_the_promote_job_answers_who_was_champion_at_a_time(sqlite_uri, tmp_path, capsys):
    from app.config import load_settings
    from jobs.promote import show_history

    settings = load_settings(data_dir=tmp_path, mlflow_tracking_uri=sqlite_uri, _env_file=None)
    events = registry.history(MlflowClient(sqlite_uri, sqlite_uri), NAME)
    champion_moved = next(e for e in events if e.alias == "champion")
    assert show_history(settings, champion_moved.time) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[-1].startswith(f"  champion: v1 (since {champion_moved.time}, champion by ")
    assert len(shown) == events.index(champion_moved) + 1 + 2  # the events so far, then "at"
    assert show_history(settings, "2000-01-01") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "at 2000-01-01T00:00:00Z: no alias set"
    with pytest.raises(CreditRiskError, match="--at 'yesterday' is not an ISO 8601 date or time"):
        show_history(settings, "yesterday")
