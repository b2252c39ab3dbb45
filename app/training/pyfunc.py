"""The MLflow pyfunc wrapper: raw feature values in, PD, decision and (optionally) reasons out."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from app.data.schema import TABLES
from app.training import artifacts, registry
from app.training.model import CreditModel
from app.training.preprocess import FeatureEncoder

ARTIFACT_KEY = "credit_model"
# Only what scoring imports; given explicitly because MLflow's inference costs ~25 s per log.
RUNTIME_PACKAGES = ("mlflow", "xgboost-cpu", "scikit-learn", "pandas", "numpy", "pyarrow")


def pip_requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in RUNTIME_PACKAGES]


class CreditRiskPyfunc(mlflow.pyfunc.PythonModel):
    """`predict(raw_df, params={"explain": True})` -> probability_of_default, decision, reasons."""

    def load_context(self, context: Any) -> None:
        self.model = CreditModel.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        explain = bool(params and params.get("explain"))
        out = self.model.score(model_input, explain=explain)
        if explain:
            out["reasons"] = [json.dumps(r) for r in out["reasons"]]
        return out


def model_input(raw_df: pd.DataFrame, encoder: FeatureEncoder) -> pd.DataFrame:
    """The raw feature columns in the signature's types: warehouse integers as int64 (nullable
    pandas integers, as Feast returns them, are not accepted by MLflow's schema check),
    request-time features as float64, categories as str."""
    integers = {c for spec in TABLES.values() for c in spec.integer_columns}
    out = raw_df[encoder.raw_columns].copy()
    for column in encoder.raw_columns:
        if column in integers:
            out[column] = out[column].astype("int64")
        elif column in encoder.numeric:
            out[column] = out[column].astype("float64")
        else:
            out[column] = out[column].astype(object)
    return out


def load_credit_model(model_uri: str) -> CreditModel:
    """The scoring object behind a model URI or local model directory, unchecked: registered
    versions load through `load_registered`, which verifies their files first."""
    loaded = mlflow.pyfunc.load_model(model_uri)
    return loaded.unwrap_python_model().model


def load_registered(mlflow_client, name: str, version: str) -> tuple[CreditModel, dict[str, str]]:
    """A registered version's model and its tags, loaded only after its files matched the
    digest recorded at registration (a pyfunc load unpickles, which runs code).

    The files are downloaded once and loaded from that copy, so what was verified is what is
    loaded. Raises ArtifactRefused (tampered, or no digest) or RegistryError (MLflow down).
    """
    uri = registry.tracking_uri(mlflow_client)
    with registry.failures_named(uri, f"reading {name} v{version}", quick=False):
        tags = dict(mlflow_client.get_model_version(name, version).tags)
        with artifacts.downloaded(f"models:/{name}/{version}") as local:
            artifacts.verify(local, tags, f"{name} v{version}")
            return load_credit_model(str(local)), tags
