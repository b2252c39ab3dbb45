"""Fits through Ray: XGBoost with Ray Train (data-parallel), a logistic baseline, Tune search."""

from __future__ import annotations

import logging
import pickle
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray
import ray.train

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
    baseline: FitResult | None = None  # the logistic baseline, when fitted in the same run


def encoded_dataset(frame: pd.DataFrame, encoder: FeatureEncoder) -> ray.data.Dataset:
    """The encoded matrix plus label as a Ray Dataset (what the training workers read)."""
    matrix = encoder.transform(frame)
    matrix[LABEL_COLUMN] = frame[encoder.dataset.label].to_numpy(dtype="float32")
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


def _frames(names: list[str]) -> dict[str, pd.DataFrame]:
    """This worker's part of each named dataset (in the order named)."""
    return {n: ray.train.get_dataset_shard(n).materialize().to_pandas() for n in names}


def _xgb_worker(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker; Ray wraps it in XGBoost's collective context, so the
    boosting rounds are synchronised across the data shards. Rank 0 then fits the logistic
    baseline too: one Ray Train run for both models (a run's start-up costs ~10 s here)."""
    import xgboost as xgb

    features = config["features"]
    frames = _frames(["train", "validation"])

    def dmatrix(df: pd.DataFrame) -> xgb.DMatrix:
        return xgb.DMatrix(df[features], label=df[LABEL_COLUMN], feature_names=features)

    dtrain, dvalid = dmatrix(frames["train"]), dmatrix(frames["validation"])
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
    if ray.train.get_context().get_world_rank() != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        booster.save_model(str(Path(tmp) / "booster.json"))
        if config["baseline_C"] is not None:
            # The boosting's shards are parts of the data; the baseline needs all of it.
            full = _frames([f"full_{n}" for n in frames]) if config["sharded"] else frames
            metrics["baseline_validation_auc"] = _fit_baseline(
                Path(tmp), features, *full.values(), config["baseline_C"]
            )
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _fit_baseline(
    out: Path, features: list[str], train: pd.DataFrame, valid: pd.DataFrame, C: float
) -> float:
    """Fit the logistic baseline, pickle it into `out`; its validation AUC."""
    from sklearn.metrics import roc_auc_score

    pipeline = baseline_pipeline(C)
    pipeline.fit(train[features], train[LABEL_COLUMN])
    with open(out / "pipeline.pkl", "wb") as f:
        pickle.dump(pipeline, f)
    return float(roc_auc_score(valid[LABEL_COLUMN], pipeline.predict_proba(valid[features])[:, 1]))


def _data_config(workers: int) -> ray.train.DataConfig:
    """Shard the boosting's datasets over the workers, unless there is one worker: a split of
    one is the whole dataset, and the split's coordinator actor costs ~10 s of a fit here."""
    return ray.train.DataConfig(datasets_to_split=["train", "validation"] if workers > 1 else [])


def _run_config(storage: str | Path, name: str, max_failures: int) -> ray.train.RunConfig:
    # Rank 0 writes the checkpoint from whichever node it runs on and the driver reads it:
    # on several nodes this must be shared storage (a common mount or a URI such as s3://).
    return ray.train.RunConfig(
        name=f"{name}-{uuid.uuid4().hex[:8]}",
        storage_path=str(storage),
        failure_config=ray.train.FailureConfig(max_failures=max_failures),
    )


@contextmanager
def _sigint_kept() -> Iterator[None]:
    """Put back this process's SIGINT handler once a fit is over.

    Ray Train V2's fit() (ray/train/v2/api/data_parallel_trainer.py,
    `_register_sigint_handler`) installs a handler that aborts its run on Ctrl-C and never
    removes it. That handler keeps a handle to the run's TrainController actor, so the
    controller, and the DatasetManager and SplitCoordinator actors it owns, stay alive as
    long as the process does (a kept-serving main job holds them all while it serves), and a
    later Ctrl-C asks a finished run to abort instead of raising KeyboardInterrupt, so the
    main job's orderly shutdown never starts. Restoring the handler drops the last handle:
    Ray then stops the controller and what it owns."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Ray Train installs no handler there (nor could we restore one)
        return
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def fit_xgboost(
    train_ds: ray.data.Dataset,
    valid_ds: ray.data.Dataset,
    encoder: FeatureEncoder,
    params: dict[str, Any],
    num_boost_round: int,
    early_stopping_rounds: int,
    workers: int,
    cpus_per_worker: float,
    storage: str | Path,
    max_failures: int = 0,
    baseline_C: float | None = None,
    worker_resources: dict[str, float] | None = None,
) -> FitResult:
    """Data-parallel XGBoost with Ray Train's XGBoostTrainer (Train V2 API); with `baseline_C`,
    the logistic baseline is fitted in the same run (FitResult.baseline)."""
    import xgboost as xgb
    from ray.train.xgboost import XGBoostTrainer

    datasets = {"train": train_ds, "validation": valid_ds}
    sharded = workers > 1
    if baseline_C is not None and sharded:
        datasets |= {"full_train": train_ds, "full_validation": valid_ds}
    trainer = XGBoostTrainer(
        _xgb_worker,
        train_loop_config={
            "features": encoder.feature_names,
            "params": params,
            "num_boost_round": num_boost_round,
            "early_stopping_rounds": early_stopping_rounds,
            "baseline_C": baseline_C,
            "sharded": sharded,
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers,
            resources_per_worker={**(worker_resources or {}), "CPU": cpus_per_worker},
        ),
        run_config=_run_config(storage, "xgboost", max_failures),
        datasets=datasets,
        dataset_config=_data_config(workers),
    )
    with _sigint_kept():
        result = trainer.fit()
    metrics = dict(result.metrics)
    baseline = None
    booster = xgb.Booster()
    with result.checkpoint.as_directory() as path:
        booster.load_model(str(Path(path) / "booster.json"))
        if baseline_C is not None:
            with open(Path(path) / "pipeline.pkl", "rb") as f:
                auc = metrics.pop("baseline_validation_auc")
                baseline = FitResult(pickle.load(f), {"validation_auc": auc}, {"C": baseline_C})
    # Keep exactly the trees up to the best round, so scoring needs no iteration range.
    best = int(metrics["best_iteration"])
    booster = booster[: best + 1]
    return FitResult(booster, metrics, params, baseline)


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
