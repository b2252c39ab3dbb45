"""Training's decision to skip: only when the champion was trained on the current snapshot."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from app.data.snapshot import CURRENT, MANIFEST
from app.domain import CHAMPION
from app.training import registry
from app.training.train import needs_training
from tests.utils.registry import NAME


def publish_manifest(settings, snapshot_id: str) -> None:
    current = settings.offline_dir / CURRENT
    current.mkdir(parents=True, exist_ok=True)
    (current / MANIFEST).write_text(json.dumps({"snapshot_id": snapshot_id}))


def test_needs_training_skips_only_a_champion_trained_on_this_snapshot(
    sqlite_uri, make_settings, tmp_path
):
    settings = make_settings(mlflow_tracking_uri=sqlite_uri)
    client = MlflowClient(sqlite_uri, sqlite_uri)
    run = client.create_run("0", tags={"snapshot_id": "snap-1"})
    version = client.create_model_version(
        NAME, source=str(tmp_path / "model"), run_id=run.info.run_id
    )
    registry.move_alias(client, NAME, CHAMPION, str(version.version), "champion", "test")

    publish_manifest(settings, "snap-1")
    assert needs_training(settings) == (
        f"champion v{version.version} was trained on snapshot snap-1: kept"
    )
    publish_manifest(settings, "snap-2")
    assert needs_training(settings) is None
    assert needs_training(make_settings(mlflow_tracking_uri=sqlite_uri, model_name="new")) is None


def test_needs_training_names_an_unreachable_registry(down_client, make_settings):
    settings = make_settings(mlflow_tracking_uri=down_client._registry_uri)
    publish_manifest(settings, "snap-1")
    with pytest.raises(registry.RegistryError, match="is unreachable"):
        needs_training(settings)
