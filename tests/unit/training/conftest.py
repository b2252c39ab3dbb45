"""Fixtures of the training unit tests: the shipped applications with their request-time
features, a small fitted model, and real SQLite registries (one reachable, one not)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import xgboost as xgb
from mlflow import MlflowClient

from app.config import SHIPPED_DATA_PATH
from app.data.warehouse import flat_rows, load_raw
from app.domain import CHAMPION
from app.training import registry
from app.training.model import CreditModel, used_columns_of
from app.training.preprocess import FeatureEncoder
from tests.utils import free_port
from tests.utils.datasets import german
from tests.utils.registry import NAME

LABEL = german().label


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = flat_rows(load_raw(SHIPPED_DATA_PATH, german()), german(), seed=42)
    return df.rename(columns={"application_timestamp": "event_timestamp"})


@pytest.fixture(scope="module")
def small_model(frame) -> CreditModel:
    encoder = FeatureEncoder.for_dataset(german())
    dtrain = xgb.DMatrix(
        encoder.transform(frame), label=frame[LABEL], feature_names=encoder.feature_names
    )
    booster = xgb.train(
        {
            "objective": "binary:logistic",
            "max_depth": 3,
            "nthread": 1,
            "monotone_constraints": {"duration_in_month": 1},
        },
        dtrain,
        30,
    )
    model = CreditModel("xgboost", encoder, booster, 1 / 6)
    model.used_columns = used_columns_of(model)
    return model


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
