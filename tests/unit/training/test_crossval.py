"""The k-fold AUC beside the test AUC: every fold scored on rows its fit never saw, the
baseline on the same folds, a sample kept stratified, the same seed the same figures."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from app.training.crossval import cross_validate, development_sample
from app.training.fit import BASELINE_C
from app.training.preprocess import FeatureEncoder
from tests.utils.datasets import german

LABEL = german().label
PARAMS = {"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": 0}


def test_each_fold_is_scored_on_rows_its_fit_never_saw(frame):
    import xgboost as xgb

    encoder = FeatureEncoder.for_dataset(german())
    cv = cross_validate(frame, encoder, PARAMS, 20, 5, 7, BASELINE_C)
    assert len(cv.xgboost) == len(cv.baseline) == 5 and cv.rows == len(frame)
    assert all(0.6 < auc < 0.95 for auc in cv.xgboost + cv.baseline)
    # Fold 1 by hand: the same split, a fit on the rest, AUC on the fold.
    matrix, y = encoder.transform(frame), frame[LABEL].to_numpy()
    fit_rows, held = next(StratifiedKFold(5, shuffle=True, random_state=7).split(matrix, y))
    booster = xgb.train(PARAMS, xgb.DMatrix(matrix.iloc[fit_rows], label=y[fit_rows]), 20)
    expected = roc_auc_score(y[held], booster.predict(xgb.DMatrix(matrix.iloc[held])))
    assert cv.xgboost[0] == pytest.approx(expected, abs=1e-12)
    metrics = cv.metrics()
    assert metrics["cv_auc_mean"] == pytest.approx(np.mean(cv.xgboost))
    assert metrics["cv_auc_std"] == pytest.approx(np.std(cv.xgboost, ddof=1))
    assert metrics["cv_folds"] == 5 and "cv_baseline_auc_std" in metrics
    assert list(cv.table().columns) == ["fold", "xgboost_auc", "baseline_auc"]
    assert cross_validate(frame, encoder, PARAMS, 20, 5, 7, BASELINE_C) == cv  # seeded


def test_without_the_baseline_only_the_model_is_cross_validated(frame):
    cv = cross_validate(frame, FeatureEncoder.for_dataset(german()), PARAMS, 5, 3, 0, None)
    assert len(cv.xgboost) == 3 and cv.baseline == []
    assert "cv_baseline_auc_mean" not in cv.metrics()
    assert cv.table()["baseline_auc"].isna().all()


def test_a_large_development_set_is_sampled_with_its_default_rate_kept(frame):
    kept = development_sample(frame, LABEL, 300, seed=1)
    assert len(kept) == 300
    assert kept[LABEL].mean() == pytest.approx(frame[LABEL].mean(), abs=0.005)
    assert development_sample(frame, LABEL, 10_000, seed=1).equals(frame.reset_index(drop=True))
