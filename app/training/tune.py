"""Optional hyperparameter search: Ray Tune trials in parallel, chosen on validation AUC."""

from __future__ import annotations

from typing import Any

import pandas as pd
from ray import tune

from app.config import Settings
from app.errors import CreditRiskError
from app.training.dataset import Splits
from app.training.preprocess import FeatureEncoder


class TuningFailed(CreditRiskError):
    """No tuning trial produced a result."""


SEARCH_SPACE: dict[str, Any] = {
    "max_depth": tune.choice([2, 3, 4, 5]),
    "eta": tune.loguniform(0.01, 0.2),
    "min_child_weight": tune.choice([1, 2, 5, 10]),
    "subsample": tune.uniform(0.6, 1.0),
    "colsample_bytree": tune.uniform(0.5, 1.0),
    "lambda": tune.loguniform(0.5, 10.0),
}


def _trial(
    config: dict[str, Any],
    data: tuple[list[str], str, pd.DataFrame, pd.DataFrame],
    base: dict[str, Any],
    rounds: int,
    patience: int,
) -> None:
    import xgboost as xgb

    features, label, train, valid = data
    dtrain = xgb.DMatrix(train[features], label=train[label], feature_names=features)
    dvalid = xgb.DMatrix(valid[features], label=valid[label], feature_names=features)
    history: dict[str, dict[str, list[float]]] = {}
    booster = xgb.train(
        {**base, **config},
        dtrain,
        num_boost_round=rounds,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=patience,
        evals_result=history,
        verbose_eval=False,
    )
    best = booster.best_iteration
    tune.report({"validation_auc": history["validation"]["auc"][best], "best_iteration": best})


def tune_xgboost(
    splits: Splits, encoder: FeatureEncoder, base: dict[str, Any], settings: Settings, trials: int
) -> dict[str, Any]:
    """Run `trials` seeded random-search trials (one CPU each, in parallel); best params."""
    features = encoder.feature_names
    label = encoder.dataset.label

    def encoded(frame: pd.DataFrame) -> pd.DataFrame:
        matrix = encoder.transform(frame)
        matrix[label] = frame[label].to_numpy()
        return matrix

    # with_parameters puts the data in the object store once, shared by every trial.
    trainable = tune.with_resources(
        tune.with_parameters(
            _trial,
            data=(features, label, encoded(splits.train), encoded(splits.validation)),
            base={**base, "nthread": 1},
            rounds=settings.num_boost_round,
            patience=settings.early_stopping_rounds,
        ),
        {"cpu": 1},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=SEARCH_SPACE,
        tune_config=tune.TuneConfig(
            num_samples=trials,
            metric="validation_auc",
            mode="max",
            search_alg=tune.search.BasicVariantGenerator(random_state=settings.seed),
        ),
        run_config=tune.RunConfig(storage_path=settings.train_storage, verbose=0),
    )
    results = tuner.fit()
    if results.num_errors == len(results):
        raise TuningFailed(f"all {trials} tuning trials failed; first error: {results.errors[0]}")
    return {**base, **results.get_best_result().config}
