"""The drift reference: the champion's training rows, reached through its MLflow run.

Training logs the rows the model learned from (raw features plus the model's own PD on them)
as an artifact of the run, and the snapshot as the run's input dataset, so the reference of
any registered version is `version -> run -> artifact`, whatever has been ingested since.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from app.config import Settings
from app.dataset import Dataset
from app.domain import CHAMPION, PREDICTION
from app.errors import CreditRiskError
from app.training import registry
from app.training.preprocess import FeatureEncoder
from app.training.stability import Bins, frozen_bins

REFERENCE_DIR = "monitoring"
REFERENCE_FILE = "reference.parquet"
# The stability grids (score deciles, characteristic bins) frozen from the reference.
BINS_FILE = "bins.json"


class ReferenceError(CreditRiskError):
    """No reference to compare live traffic with (no champion, or its run lacks one)."""


@dataclass(frozen=True)
class Reference:
    frame: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    model_version: str
    run_id: str
    # Column -> its frozen grid (stability.py): the version's bins.json, or the same bins
    # worked out from the frame for a version trained before bins were logged.
    bins: dict[str, Bins] = field(default_factory=dict)


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
        grids = reference_bins(reference, model.encoder)
        bins = Path(tmp) / BINS_FILE
        bins.write_text(json.dumps({c: b.to_dict() for c, b in grids.items()}, indent=1))
        mlflow.log_artifact(str(bins), REFERENCE_DIR)
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
        bins = _logged_bins(mlflow, run_id, tmp)
    dataset = settings.load_dataset()
    numeric, categorical = drift_columns(dataset, frame.columns)
    if bins is None:
        bins = reference_bins(frame, FeatureEncoder.for_dataset(dataset))
    return Reference(frame, numeric, categorical, str(version), run_id, bins)


def reference_bins(reference: pd.DataFrame, encoder: FeatureEncoder) -> dict[str, Bins]:
    """The score's deciles and every model column's bins (drift_exclude is applied when a
    check reads them, as for drift)."""
    numeric = [c for c in encoder.numeric if c in reference.columns]
    categorical = [c for c in encoder.categorical if c in reference.columns]
    return frozen_bins(reference, PREDICTION, numeric, categorical)


def _logged_bins(mlflow, run_id: str, tmp: str) -> dict[str, Bins] | None:
    """The run's bins.json; None when the run has none (trained before it was logged). An
    error reaching the store is raised, not read as "none": the caller reports it."""
    artifacts = mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path=REFERENCE_DIR)
    if not any(Path(a.path).name == BINS_FILE for a in artifacts):
        return None
    path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=f"{REFERENCE_DIR}/{BINS_FILE}", dst_path=tmp
    )
    return {c: Bins.from_dict(d) for c, d in json.loads(Path(path).read_text()).items()}


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
