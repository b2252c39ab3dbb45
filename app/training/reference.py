"""The drift reference: the champion's training rows, reached through its MLflow run.

Training logs the rows the model learned from (raw features plus the model's own PD on them)
as an artifact of the run, and the snapshot as the run's input dataset, so the reference of
any registered version is `version -> run -> artifact`, whatever has been ingested since.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from app.config import Settings
from app.dataset import Dataset
from app.domain import CHAMPION, PREDICTION
from app.errors import CreditRiskError
from app.training import registry
from app.training.preprocess import FeatureEncoder

REFERENCE_DIR = "monitoring"
REFERENCE_FILE = "reference.parquet"


class ReferenceError(CreditRiskError):
    """No reference to compare live traffic with (no champion, or its run lacks one)."""


@dataclass(frozen=True)
class Reference:
    frame: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    model_version: str
    run_id: str


def reference_frame(model, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's raw features of `frame` and the PD the model gives them."""
    out = frame[model.encoder.raw_columns].reset_index(drop=True).copy()
    out[PREDICTION] = model.predict_pd(frame)
    return out


def log_reference(mlflow, model, train: pd.DataFrame, snapshot_id: str, source: Path) -> None:
    """Inside an active run: the reference artifact and the training input's lineage."""
    reference = reference_frame(model, train)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / REFERENCE_FILE
        reference.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), REFERENCE_DIR)
    # The dataset's schema as the model's signature states it: numbers as double, which can
    # hold a missing value (MLflow's schema inference warns about integer columns otherwise).
    numbers = reference.select_dtypes("number").columns
    as_logged = reference.astype({c: "float64" for c in numbers})
    name = f"train@{snapshot_id}"
    dataset = mlflow.data.from_pandas(as_logged, source=str(source), name=name)
    mlflow.log_input(dataset, context="training")


def load_reference(settings: Settings, version: str | None = None) -> Reference:
    """The reference of `version` (default: the champion) from its training run."""
    import mlflow

    client = registry.client(settings)
    name = settings.model_name
    version = version or registry.alias_version(client, name, CHAMPION)
    if version is None:
        raise ReferenceError(f"model {name!r} has no champion: nothing to compare traffic with")
    run_id = client.get_model_version(name, version).run_id
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=f"{REFERENCE_DIR}/{REFERENCE_FILE}", dst_path=tmp
            )
        except Exception as exc:
            raise ReferenceError(
                f"{name} v{version} (run {run_id}) has no drift reference "
                f"({REFERENCE_DIR}/{REFERENCE_FILE}): retrain it with this release "
                f"({type(exc).__name__})"
            ) from None
        frame = pd.read_parquet(path)
    numeric, categorical = drift_columns(settings.load_dataset(), frame.columns)
    return Reference(frame, numeric, categorical, str(version), run_id)


def drift_columns(dataset: Dataset, logged: Iterable[str]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns a drift check compares: the model's columns its
    reference holds (`logged`: what the version's training run saved), without the spec's
    `monitoring.drift_exclude`."""
    encoder = FeatureEncoder.for_dataset(dataset)
    kept = set(logged) - set(dataset.spec.monitoring.drift_exclude)
    return (
        [c for c in encoder.numeric if c in kept],
        [c for c in encoder.categorical if c in kept],
    )
