"""The tabled TreeSHAP gives XGBoost's own contributions, and steps aside where it cannot."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from app.training import treeshap
from app.training.treeshap import CodedShap, PathShap, explainer_for


def _data(rows: int = 3000, features: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    x[:, 1] = np.round(x[:, 1])  # ties at thresholds
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=rows) > 0).astype(int)
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take each split's default
    return x, y


def _booster(depth: int, rounds: int = 60, **params):
    x, y = _data()
    config = {"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "nthread": 1}
    return xgb.train({**config, "subsample": 0.8, **params}, xgb.DMatrix(x, label=y), rounds)


def _xgboost(booster, x):
    dmatrix = xgb.DMatrix(x, missing=np.nan)
    return booster.predict(dmatrix, pred_contribs=True).astype("float64")


KINDS = [(1, CodedShap), (2, CodedShap), (3, CodedShap), (4, PathShap), (5, PathShap)]


@pytest.mark.parametrize(("depth", "kind"), KINDS)
def test_contributions_equal_xgboosts_at_every_depth(depth, kind):
    booster = _booster(depth)
    x, _ = _data(rows=500, seed=1)  # rows the model never saw
    explainer = explainer_for(booster, x.shape[1])
    assert isinstance(explainer, kind)
    # Six features and deep trees: paths split on the same feature twice.
    np.testing.assert_allclose(explainer.contributions(x), _xgboost(booster, x), atol=2e-5)


def test_a_row_scores_the_same_alone_as_in_a_batch_of_many_chunks(monkeypatch):
    monkeypatch.setattr(treeshap, "CHUNK_ENTRIES", 1_000)
    booster = _booster(3)
    x, _ = _data(rows=400, seed=2)
    explainer = explainer_for(booster, x.shape[1])
    assert explainer.rows < len(x)  # several chunks
    batch = explainer.contributions(x)
    alone = np.vstack([explainer.contributions(x[i : i + 1]) for i in range(0, 400, 37)])
    np.testing.assert_array_equal(batch[::37], alone)


def test_trees_with_no_split_count_in_the_bias_only():
    booster = _booster(3, rounds=5, min_child_weight=1e9)  # no split is ever worth it
    x, _ = _data(rows=20)
    contributions = explainer_for(booster, x.shape[1]).contributions(x)
    assert np.all(contributions[:, :-1] == 0)
    np.testing.assert_allclose(contributions, _xgboost(booster, x), atol=1e-6)


def test_models_it_cannot_table_keep_xgboosts_path(monkeypatch):
    x, y = _data()
    multiclass = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 2},
        xgb.DMatrix(x, label=(np.nan_to_num(x[:, 0]) > 0) + (np.nan_to_num(x[:, 3]) > 0)),
        5,
    )
    assert explainer_for(multiclass, x.shape[1]) is None
    dart = xgb.train({"booster": "dart", "max_depth": 2}, xgb.DMatrix(x, label=y), 5)
    assert explainer_for(dart, x.shape[1]) is None
    monkeypatch.setattr(treeshap, "MAX_TABLE_ENTRIES", 10)
    assert explainer_for(_booster(4, rounds=5), x.shape[1]) is None  # tables too large


def test_a_table_that_disagrees_with_xgboost_is_never_used(monkeypatch):
    monkeypatch.setattr(treeshap, "TOLERANCE", -1.0)  # no table can pass the load check
    assert explainer_for(_booster(2, rounds=5), 6) is None


@pytest.mark.parametrize("depth", [1, 3])
def test_margins_equal_xgboosts(depth):
    booster = _booster(depth)
    x, _ = _data(rows=500, seed=3)
    margins = explainer_for(booster, x.shape[1]).margins(x)
    expected = booster.inplace_predict(x, predict_type="margin").astype("float64")
    np.testing.assert_allclose(margins, expected, atol=2e-5)
