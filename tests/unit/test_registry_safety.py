"""A registry that fails safe, against real MLflow (a SQLite registry, and a client pointed at a
port where nothing listens): "alias not set" and "registry unreachable" are different answers,
nothing moves or is overwritten when MLflow cannot be read, and artifact digests catch edits."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from app.domain import CHALLENGER, CHAMPION
from app.training import artifacts, registry
from tests.utils import free_port

NAME = "credit_risk"


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    """A real registry with v1 (champion) and v2 (no alias), each registration audited; made
    once (MLflow's migrations cost seconds) and copied for each test."""
    path = tmp_path_factory.mktemp("registry") / "mlflow.db"
    uri = f"sqlite:///{path}"
    client = MlflowClient(uri, uri)
    client.create_registered_model(NAME)
    for _ in range(2):
        version = client.create_model_version(NAME, source=str(path.parent / "model")).version
        registry.record(client, NAME, "register", None, str(version), None, "test")
    registry.move_alias(client, NAME, CHAMPION, "1", "champion", "first")
    return path


@pytest.fixture
def sqlite_uri(template_db, tmp_path) -> str:
    shutil.copy(template_db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def down_client() -> MlflowClient:
    """A real MLflow client for a server that is not there (connection refused)."""
    uri = f"http://127.0.0.1:{free_port()}"
    return MlflowClient(uri, uri)


def audit_tags(uri: str) -> dict[str, str]:
    tags = MlflowClient(uri, uri).get_registered_model(NAME).tags
    return {k: v for k, v in tags.items() if k.startswith(registry.AUDIT_PREFIX)}


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


def test_audit_events_are_appended_never_overwritten(sqlite_uri):
    client = MlflowClient(sqlite_uri, sqlite_uri)
    # An entry in the older key format (no random part) stays and keeps its place.
    old = audit_tags(sqlite_uri)
    client.set_registered_model_tag(NAME, "audit.000004", next(iter(old.values())))
    # Two writers that read the history at the same moment get two different keys.
    first = registry._next_audit_key(client, NAME)
    second = registry._next_audit_key(client, NAME)
    assert first != second and first.startswith("audit.000005.")
    registry._write_event(client, NAME, first, registry._event("a", None, "1", None, "one"))
    registry._write_event(client, NAME, second, registry._event("b", None, "1", None, "two"))
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


def test_training_places_no_version_when_the_champion_lookup_fails(
    sqlite_uri, down_client, make_settings
):
    from app.training.train import register_version

    settings = make_settings(mlflow_tracking_uri=down_client._registry_uri)
    metrics, checks = {"test_auc": 0.8}, {"auc": True}
    with pytest.raises(registry.RegistryError, match="is unreachable or erroring"):
        register_version(settings, down_client, "models:/m-x", "run", metrics, checks, None)
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


# --- artifact digests ---------------------------------------------------------------------


def test_digest_names_a_changed_an_added_and_a_missing_file(tmp_path):
    model = tmp_path / "model"
    (model / "artifacts").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "artifacts" / "booster.json").write_text('{"trees": []}')
    (model / "python_model.pkl").write_bytes(b"\x80\x04N.")
    tags = artifacts.digest_tags(model)
    artifacts.verify(model, tags, "credit_risk v1")  # untouched: accepted

    (model / "artifacts" / "booster.json").write_text('{"trees": [1]}')
    with pytest.raises(artifacts.ArtifactRefused, match=r"changed artifacts/booster\.json"):
        artifacts.verify(model, tags, "credit_risk v1")
    (model / "artifacts" / "booster.json").write_text('{"trees": []}')
    (model / "python_model.pkl").unlink()
    (model / "evil.py").write_text("import os\n")
    with pytest.raises(artifacts.ArtifactRefused) as caught:
        artifacts.verify(model, tags, "credit_risk v1")
    assert "credit_risk v1" in str(caught.value)
    assert "unexpected evil.py" in str(caught.value)
    assert "missing python_model.pkl" in str(caught.value)


def test_a_version_without_a_digest_or_with_a_forged_listing_is_refused(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(artifacts.ArtifactRefused, match="v3 has no artifact_sha256 tag"):
        artifacts.verify(model, {}, "credit_risk v3")
    tags = artifacts.digest_tags(model)
    (model / "MLmodel").write_text("flavors: {python_function: {}}\n")
    # A listing edited to match the new file does not match the recorded digest: still refused.
    forged = {**tags, artifacts.FILES_TAG: json.dumps(artifacts.file_digests(model))}
    with pytest.raises(artifacts.ArtifactRefused, match="files differ"):
        artifacts.verify(model, forged, "credit_risk v3")


# --- the `traffic` tag's bounds -------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "honoured", "note"),
    [
        (None, None, None),
        ("none", None, None),
        ("shadow", "shadow", "honoured (shadow scoring only)"),
        ("0.05", "weight=0.05", "honoured (A/B weight floor 0.05)"),
        ("weight=0.1", "weight=0.1", "honoured"),
        ("weight=0.5", None, "ignored: above serve_max_tag_traffic 0.1"),
        ("1", None, "ignored: above serve_max_tag_traffic 0.1"),
        ("weight=1.5", None, "ignored: weight outside (0, 1]"),
        ("all of it", None, "ignored: not `shadow`"),
    ],
)
def test_a_traffic_tag_is_honoured_only_within_the_bound(tag, honoured, note):
    from app.serving.routing import RoutingConfig, effective_config
    from app.training.source import bounded_traffic

    got, said = bounded_traffic(tag, 0.1)
    assert got == honoured
    assert (said is None) if note is None else (note in said)
    config = effective_config(RoutingConfig(), got)
    assert config.challenger_weight <= 0.1
