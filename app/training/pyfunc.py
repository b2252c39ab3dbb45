"""The MLflow pyfunc wrapper: raw feature values in, PD, decision and (optionally) reasons out."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from app.domain import PREDICTION
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


def warehouse_types(encoder: FeatureEncoder) -> dict[str, str]:
    """Each raw column's type where it comes from: `long` and `string` for warehouse columns,
    `double` for request-time features. Logged as the model's metadata, because the signature
    declares every number `double` (see `model_signature`)."""
    tables = encoder.dataset.tables.values()
    integers = {c for spec in tables for c in spec.integer_columns}
    return {
        c: "long" if c in integers else "double" if c in encoder.numeric else "string"
        for c in encoder.raw_columns
    }


def model_signature(encoder: FeatureEncoder) -> ModelSignature:
    """Inputs, outputs and the `explain` parameter of the logged model.

    Every number is `double`, warehouse integers included: a `long` column cannot hold a
    missing value, so MLflow's schema check (and /invocations' JSON parsing) would reject
    the rows the API scores when the feature store lacks an integer. A whole-valued double
    encodes exactly as the integer does. A missing category is a null `string`.
    """
    inputs = Schema(
        [ColSpec("double" if c in encoder.numeric else "string", c) for c in encoder.raw_columns]
    )
    outputs = Schema(
        [
            ColSpec("double", PREDICTION),
            ColSpec("string", "decision"),
            # JSON list of {code, feature, description, contribution}; only with `explain`.
            ColSpec("string", "reasons", required=False),
        ]
    )
    params = ParamSchema([ParamSpec("explain", "boolean", False)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def model_input(raw_df: pd.DataFrame, encoder: FeatureEncoder) -> pd.DataFrame:
    """The raw feature columns in the signature's types: numbers as float64 (NaN for missing;
    nullable pandas integers, as Feast returns them, are not accepted by MLflow's schema
    check), categories as str or None."""
    out = raw_df[encoder.raw_columns].copy()
    for column in encoder.raw_columns:
        if column in encoder.numeric:
            out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
        else:
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def input_example(
    frame: pd.DataFrame, encoder: FeatureEncoder
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A few rows of `frame` as the model takes them, the last with a stored integer missing,
    and `explain` on: the logged example (and its serving_input_example.json, a ready
    /invocations body) shows callers that a feature the store lacks is sent as null."""
    example = model_input(frame.head(5), encoder).reset_index(drop=True)
    # One no derived feature is computed from, so the row stays consistent.
    derived_inputs = set(encoder.dataset.derived_inputs)
    stored = [
        c
        for c, kind in warehouse_types(encoder).items()
        if kind == "long" and c not in derived_inputs
    ]
    if stored and len(example):
        example.loc[len(example) - 1, stored[0]] = float("nan")
    # None rather than NaN, so the JSON files MLflow writes hold null (NaN is not JSON).
    example = example.astype(object).where(example.notna(), None)
    return example, {"explain": True}


def load_credit_model(model_uri: str) -> CreditModel:
    """The scoring object behind a model URI or local model directory, unchecked: registered
    versions load through `load_registered`, which verifies their files first."""
    with _import_path_kept():
        loaded = mlflow.pyfunc.load_model(model_uri)
    return loaded.unwrap_python_model().model


@contextmanager
def _import_path_kept() -> Iterator[None]:
    """sys.path as it was once the model is loaded.

    `mlflow.pyfunc.load_model` puts the model's `code/` directory in front of sys.path
    (`mlflow.utils.model_utils._add_code_to_system_path`) and never takes it out. For a
    registered version that directory is in the load's temporary copy, deleted right after: each
    load would leave one more deleted directory for every later import to look in first. The
    entries added during the load are taken out (imports the model's code made while loading
    stay in sys.modules, as they would have)."""
    before = set(sys.path)
    try:
        yield
    finally:
        sys.path[:] = [p for p in sys.path if p in before]


def load_registered(mlflow_client, name: str, version: str) -> tuple[CreditModel, dict[str, str]]:
    """A registered version's model and its tags, loaded only after its files matched the
    digest recorded at registration (a pyfunc load unpickles, which runs code).

    The files are downloaded once and loaded from that copy, so what was verified is what is
    loaded. Every MLflow request has a timeout and few or no retries (tracking.QUICK for the
    registry, tracking.DOWNLOAD for the files), all ending by the caller's
    tracking.load_deadline if it set one. Raises ArtifactRefused (tampered, or no digest) or
    RegistryError (MLflow down, hung or past the deadline).
    """
    uri = registry.tracking_uri(mlflow_client)
    label = f"{name} v{version}"
    with registry.failures_named(uri, f"reading {label}"):
        tags = dict(mlflow_client.get_model_version(name, version).tags)
        location = mlflow_client.get_model_version_download_uri(name, version)
    with artifacts.fetched(location, uri, label) as local:
        artifacts.verify(local, tags, label)
        return load_credit_model(str(local)), tags
