"""Fits through Ray: XGBoost with Ray Train (data-parallel), a logistic baseline, Tune search."""

from __future__ import annotations

import logging
import pickle
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray
import ray.train

from app.data.schema import LABEL
from app.training.preprocess import FeatureEncoder

log = logging.getLogger(__name__)

LABEL_COLUMN = "__label__"
# Inverse regularisation strength of the logistic baseline.
BASELINE_C = 0.3


@dataclass
class FitResult:
    estimator: Any
    metrics: dict[str, float]
    params: dict[str, Any]


def encoded_dataset(frame: pd.DataFrame, encoder: FeatureEncoder) -> ray.data.Dataset:
    """The encoded matrix plus label as a Ray Dataset (what the training workers read)."""
    matrix = encoder.transform(frame)
    matrix[LABEL_COLUMN] = frame[LABEL].to_numpy(dtype="float32")
    return ray.data.from_pandas(matrix)


def xgb_params(
    base: dict[str, Any], monotone: dict[str, int], encoder: FeatureEncoder, nthread: int, seed: int
) -> dict[str, Any]:
    unknown = [c for c in monotone if c not in encoder.numeric]
    if unknown:
        raise ValueError(
            f"monotone constraints name unknown or non-numeric features: {', '.join(unknown)}"
        )
    params = {
        "objective": "binary:logistic",
        # Early stopping watches the last metric: log loss is smoother than AUC on small sets.
        "eval_metric": ["auc", "logloss"],
        "tree_method": "hist",
        "seed": seed,
        "nthread": nthread,
        **base,
    }
    if monotone:
        params["monotone_constraints"] = {k: int(v) for k, v in monotone.items()}
    return params


def _xgb_worker(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker; Ray wraps it in XGBoost's collective context, so the
    boosting rounds are synchronised across the data shards."""
    import xgboost as xgb

    features = config["features"]

    def shard(name: str) -> xgb.DMatrix:
        df = ray.train.get_dataset_shard(name).materialize().to_pandas()
        return xgb.DMatrix(df[features], label=df[LABEL_COLUMN], feature_names=features)

    dtrain, dvalid = shard("train"), shard("validation")
    history: dict[str, dict[str, list[float]]] = {}
    booster = xgb.train(
        config["params"],
        dtrain,
        num_boost_round=config["num_boost_round"],
        evals=[(dtrain, "train"), (dvalid, "validation")],
        early_stopping_rounds=config["early_stopping_rounds"],
        evals_result=history,
        verbose_eval=False,
    )
    best = booster.best_iteration
    metrics = {
        "best_iteration": float(best),
        "validation_auc": float(history["validation"]["auc"][best]),
        "validation_logloss": float(history["validation"]["logloss"][best]),
        "train_auc": float(history["train"]["auc"][best]),
    }
    # Report once, with the final model: per-round reports cost more than the boosting here.
    if ray.train.get_context().get_world_rank() == 0:
        with tempfile.TemporaryDirectory() as tmp:
            booster.save_model(str(Path(tmp) / "booster.json"))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics)


def _data_config(workers: int) -> ray.train.DataConfig:
    """Shard the datasets over the workers, unless there is one worker: a split of one is the
    whole dataset, and the split's coordinator actor costs ~10 s of a fit here."""
    return ray.train.DataConfig(datasets_to_split="all" if workers > 1 else [])


def _run_config(storage: Path, name: str, max_failures: int) -> ray.train.RunConfig:
    return ray.train.RunConfig(
        name=f"{name}-{uuid.uuid4().hex[:8]}",
        storage_path=str(storage),
        failure_config=ray.train.FailureConfig(max_failures=max_failures),
    )


def fit_xgboost(
    train_ds: ray.data.Dataset,
    valid_ds: ray.data.Dataset,
    encoder: FeatureEncoder,
    params: dict[str, Any],
    num_boost_round: int,
    early_stopping_rounds: int,
    workers: int,
    cpus_per_worker: float,
    storage: Path,
    max_failures: int = 0,
) -> FitResult:
    """Data-parallel XGBoost with Ray Train's XGBoostTrainer (Train V2 API)."""
    import xgboost as xgb
    from ray.train.xgboost import XGBoostTrainer

    trainer = XGBoostTrainer(
        _xgb_worker,
        train_loop_config={
            "features": encoder.feature_names,
            "params": params,
            "num_boost_round": num_boost_round,
            "early_stopping_rounds": early_stopping_rounds,
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, resources_per_worker={"CPU": cpus_per_worker}
        ),
        run_config=_run_config(storage, "xgboost", max_failures),
        datasets={"train": train_ds, "validation": valid_ds},
        dataset_config=_data_config(workers),
    )
    result = trainer.fit()
    booster = xgb.Booster()
    with result.checkpoint.as_directory() as path:
        booster.load_model(str(Path(path) / "booster.json"))
    # Keep exactly the trees up to the best round, so scoring needs no iteration range.
    best = int(result.metrics["best_iteration"])
    booster = booster[: best + 1]
    return FitResult(booster, dict(result.metrics), params)


def baseline_pipeline(C: float):
    """The logistic-regression scorecard: impute -> scale -> logistic regression."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=C, max_iter=2000)),
        ]
    )


def _baseline_worker(config: dict[str, Any]) -> None:
    from sklearn.metrics import roc_auc_score

    features = config["features"]
    train = ray.train.get_dataset_shard("train").materialize().to_pandas()
    valid = ray.train.get_dataset_shard("validation").materialize().to_pandas()
    pipeline = baseline_pipeline(config["C"])
    pipeline.fit(train[features], train[LABEL_COLUMN])
    auc = roc_auc_score(valid[LABEL_COLUMN], pipeline.predict_proba(valid[features])[:, 1])
    with tempfile.TemporaryDirectory() as tmp:
        with open(Path(tmp) / "pipeline.pkl", "wb") as f:
            pickle.dump(pipeline, f)
        ray.train.report(
            {"validation_auc": float(auc)}, checkpoint=ray.train.Checkpoint.from_directory(tmp)
        )


def fit_baseline(
    train_ds: ray.data.Dataset,
    valid_ds: ray.data.Dataset,
    encoder: FeatureEncoder,
    storage: Path,
    cpus: float,
    C: float = BASELINE_C,
) -> FitResult:
    """A logistic-regression scorecard baseline, fitted on a Ray Train worker."""
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    trainer = DataParallelTrainer(
        _baseline_worker,
        train_loop_config={"features": encoder.feature_names, "C": C},
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": cpus}),
        run_config=_run_config(storage, "baseline", 0),
        datasets={"train": train_ds, "validation": valid_ds},
        dataset_config=_data_config(1),
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as path, open(Path(path) / "pipeline.pkl", "rb") as f:
        pipeline = pickle.load(f)
    return FitResult(pipeline, dict(result.metrics), {"C": C})
