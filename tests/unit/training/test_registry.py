"""A registry that fails safe, against real MLflow (a SQLite registry, and a client pointed at a
port where nothing listens): "alias not set" and "registry unreachable" are different answers,
and nothing moves or is overwritten when MLflow cannot be read."""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient

from app.domain import CHALLENGER, CHAMPION
from app.training import registry
from tests.utils.registry import NAME, audit_tags


def test_unset_alias_and_missing_model_read_as_absent(sqlite_uri):
    client = MlflowClient(sqlite_uri, sqlite_uri)
    assert registry.alias_version(client, NAME, CHAMPION) == "1"
    assert registry.alias_version(client, NAME, CHALLENGER) is None
    assert registry.alias_version(client, "never_registered", CHAMPION) is None
    assert registry.history(client, "never_registered") == []


def test_unreachable_registry_is_an_error_not_absent_and_fails_fast(down_client):
    started = time.monotonic()
    with pytest.raises(registry.RegistryError, match="is unreachable or erroring") as caught:
        registry.alias_version(down_client, NAME, CHAMPION)
    # No retries: MLflow's defaults would retry for minutes.
    assert time.monotonic() - started < 15
    assert "\n" not in str(caught.value)
    with pytest.raises(registry.RegistryError, match="reading the audit history"):
        registry.history(down_client, NAME)


def test_no_write_when_the_registry_cannot_be_read(sqlite_uri, down_client):
    before = audit_tags(sqlite_uri)
    with pytest.raises(registry.RegistryError):
        registry.record(down_client, NAME, "register", None, "3", None, "test")
    with pytest.raises(registry.RegistryError):
        registry.move_alias(down_client, NAME, CHAMPION, "2", "promote", "test")
    client = MlflowClient(sqlite_uri, sqlite_uri)
    assert registry.alias_version(client, NAME, CHAMPION) == "1"
    assert audit_tags(sqlite_uri) == before


def test_training_places_no_version_when_the_champion_lookup_fails(
    sqlite_uri, down_client, make_settings
):
    settings = make_settings(mlflow_tracking_uri=down_client._registry_uri)
    metrics, checks = {"test_auc": 0.8}, {"auc": True}
    with pytest.raises(registry.RegistryError, match="is unreachable or erroring"):
        registry.register(settings, down_client, "models:/m-x", "run", metrics, checks, None)
    client = MlflowClient(sqlite_uri, sqlite_uri)
    assert registry.alias_version(client, NAME, CHAMPION) == "1"
    assert len(client.search_model_versions(f"name='{NAME}'")) == 2


def test_traffic_tag_changes_are_audited(sqlite_uri):
    client = MlflowClient(sqlite_uri, sqlite_uri)
    registry.set_traffic(client, NAME, "2", "weight=0.05", "operator test")
    registry.set_traffic(client, NAME, "2", None, "operator test")
    assert "traffic" not in client.get_model_version(NAME, "2").tags
    events = [e for e in registry.history(client, NAME) if e.action == "traffic"]
    assert [e.reason.split(";")[0] for e in events] == [
        "traffic: - -> weight=0.05",
        "traffic: weight=0.05 -> -",
    ]
    assert all(e.version == "2" for e in events)
