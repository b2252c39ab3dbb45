"""K-fold cross-validated AUC of the model and the logistic baseline on the development rows
(train + validation; the test split stays untouched), so a 200-row test AUC is read with its
spread.

Each fold refits XGBoost with the fitted model's parameters and its chosen number of rounds
(no early stopping on the fold's own rows) and the baseline with its C. Cost: `folds` more
fits on (folds - 1) / folds of at most `max_rows` rows: above that a stratified sample is
used, since the spread of an AUC over 200,000 rows is already far below what separates two
models. Above LOCAL_ROWS it runs as one Ray task beside the driver, not in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.config import Settings
from app.training.dataset import Splits
from app.training.preprocess import FeatureEncoder

CV_TABLE = "evaluation/cross_validation.csv"
# Development sets up to this size are cross-validated in the calling process.
LOCAL_ROWS = 20_000


@dataclass(frozen=True)
class CrossValidation:
    rows: int  # the development rows used (after any sample)
    xgboost: list[float]  # AUC per fold
    baseline: list[float]

    def metrics(self) -> dict[str, float]:
        """cv_auc_mean/std and cv_baseline_auc_mean/std (sample standard deviation), the
        number of folds and rows."""
        out = {"cv_folds": float(len(self.xgboost)), "cv_rows": float(self.rows)}
        for name, aucs in (("cv_auc", self.xgboost), ("cv_baseline_auc", self.baseline)):
            if aucs:
                out[f"{name}_mean"] = float(np.mean(aucs))
                out[f"{name}_std"] = float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0
        return out

    def table(self) -> pd.DataFrame:
        folds = range(1, len(self.xgboost) + 1)
        baseline = self.baseline or [np.nan] * len(self.xgboost)
        return pd.DataFrame({"fold": folds, "xgboost_auc": self.xgboost, "baseline_auc": baseline})


def development_sample(frame: pd.DataFrame, label: str, max_rows: int, seed: int) -> pd.DataFrame:
    """`frame`, or a stratified sample of `max_rows` of it (the default rate kept)."""
    if len(frame) <= max_rows:
        return frame.reset_index(drop=True)
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(frame, train_size=max_rows, stratify=frame[label], random_state=seed)
    return kept.reset_index(drop=True)


def cross_validate(
    frame: pd.DataFrame,
    encoder: FeatureEncoder,
    params: dict[str, Any],
    rounds: int,
    folds: int,
    seed: int,
    baseline_C: float | None,
) -> CrossValidation:
    """Stratified `folds`-fold AUC of XGBoost (`params`, `rounds`) and, with `baseline_C`, of
    the logistic baseline, on `frame`'s raw rows."""
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from app.training.fit import baseline_pipeline

    matrix = encoder.transform(frame)
    y = frame[encoder.dataset.label].to_numpy(dtype="int64")
    xgb_aucs, baseline_aucs = [], []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_rows, held in splitter.split(matrix, y):
        train = xgb.DMatrix(matrix.iloc[fit_rows], label=y[fit_rows])
        booster = xgb.train(params, train, num_boost_round=rounds)
        scores = booster.predict(xgb.DMatrix(matrix.iloc[held]))
        xgb_aucs.append(float(roc_auc_score(y[held], scores)))
        if baseline_C is not None:
            pipeline = baseline_pipeline(baseline_C).fit(matrix.iloc[fit_rows], y[fit_rows])
            scores = pipeline.predict_proba(matrix.iloc[held])[:, 1]
            baseline_aucs.append(float(roc_auc_score(y[held], scores)))
    return CrossValidation(len(frame), xgb_aucs, baseline_aucs)


def cross_validate_on_ray(cpus: float, *args: Any) -> CrossValidation:
    """cross_validate(*args) as one Ray task with `cpus` CPUs (the training workers' size)."""
    import ray

    task = ray.remote(cross_validate).options(num_cpus=cpus, max_retries=1)
    return ray.get(task.remote(*args))


def cross_validation(
    settings: Settings,
    splits: Splits,
    encoder: FeatureEncoder,
    params: dict[str, Any],
    rounds: int,
    with_baseline: bool,
) -> CrossValidation:
    """The k-fold AUC of the fitted model's settings (and the baseline's) on train and
    validation together, sampled down to cv_max_rows, as one Ray task."""
    from app.training.fit import BASELINE_C

    development = development_sample(
        pd.concat([splits.train, splits.validation], ignore_index=True),
        encoder.dataset.label,
        settings.cv_max_rows,
        settings.seed,
    )
    args = (development, encoder, params, rounds, settings.cv_folds, settings.seed)
    baseline_C = BASELINE_C if with_baseline else None
    if len(development) <= LOCAL_ROWS:
        # A few seconds of fitting here, where a Ray task would first spend longer starting
        # a worker and shipping the rows to it.
        return cross_validate(*args, baseline_C)
    return cross_validate_on_ray(settings.train_cpus_per_worker, *args, baseline_C)
