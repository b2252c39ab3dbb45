"""Training logic without Ray: splits, feature checks, encoding, contributions, gates."""

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from app.config import SHIPPED_DATA_PATH, load_settings
from app.data.schema import LABEL
from app.data.warehouse import assign_ids_and_times, load_raw
from app.features.transforms import application_features
from app.training.dataset import TrainingDataError, split_frame
from app.training.model import CreditModel, used_columns_of
from app.training.preprocess import PROTECTED_COLUMNS, FeatureEncoder
from app.training.train import check_features, gates


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = assign_ids_and_times(load_raw(SHIPPED_DATA_PATH), seed=42)
    df = pd.concat([df, application_features(df)], axis=1)
    return df.rename(columns={"application_timestamp": "event_timestamp"})


def test_random_split_is_seeded_stratified_and_disjoint(frame):
    a = split_frame(frame, "random", 7, 0.2, 0.2)
    b = split_frame(frame, "random", 7, 0.2, 0.2)
    c = split_frame(frame, "random", 8, 0.2, 0.2)
    assert a.sizes() == {"train": 600, "validation": 200, "test": 200}
    pd.testing.assert_frame_equal(a.test, b.test)
    assert not a.test["application_id"].equals(c.test["application_id"])
    ids = [set(p["application_id"]) for p in (a.train, a.validation, a.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for part in (a.train, a.validation, a.test):
        assert part[LABEL].mean() == pytest.approx(0.3, abs=0.01)


def test_out_of_time_split_tests_on_the_newest_applications(frame):
    s = split_frame(frame, "out_of_time", 7, 0.2, 0.2)
    assert s.train["event_timestamp"].max() <= s.validation["event_timestamp"].min()
    assert s.validation["event_timestamp"].max() <= s.test["event_timestamp"].min()


def test_single_class_and_tiny_sets_are_refused(frame):
    with pytest.raises(TrainingDataError, match="only one class"):
        split_frame(frame[frame[LABEL] == 0], "random", 1, 0.2, 0.2)
    with pytest.raises(TrainingDataError, match="too few"):
        split_frame(frame.head(2), "random", 1, 0.2, 0.2)
    with pytest.raises(TrainingDataError, match="single class"):
        check_features(frame.assign(**{LABEL: 1}), FeatureEncoder.default())


def test_missing_features_are_named(frame):
    with pytest.raises(TrainingDataError, match="lacks features: purpose"):
        check_features(frame.drop(columns=["purpose"]), FeatureEncoder.default())
    with pytest.raises(TrainingDataError, match="no values for features: housing"):
        check_features(frame.assign(housing=None), FeatureEncoder.default())


def test_encoder_names_are_xgboost_safe_and_protected_columns_unused(frame):
    encoder = FeatureEncoder.default()
    assert not any(ch in name for name in encoder.feature_names for ch in "[]<")
    assert not set(PROTECTED_COLUMNS) & set(encoder.raw_columns)
    matrix = encoder.transform(frame.head(3))
    # each categorical column is exactly one-hot for a known category
    purpose = [n for n in encoder.feature_names if n.startswith("purpose__")]
    assert (matrix[purpose].sum(axis=1) == 1).all()
    unknown = encoder.transform(frame.head(1).assign(purpose="spaceship"))
    assert unknown[purpose].sum(axis=1).iloc[0] == 0


@pytest.fixture(scope="module")
def small_model(frame) -> CreditModel:
    encoder = FeatureEncoder.default()
    dtrain = xgb.DMatrix(
        encoder.transform(frame), label=frame[LABEL], feature_names=encoder.feature_names
    )
    booster = xgb.train(
        {
            "objective": "binary:logistic",
            "max_depth": 3,
            "nthread": 1,
            "monotone_constraints": {"duration_in_month": 1},
        },
        dtrain,
        30,
    )
    model = CreditModel("xgboost", encoder, booster, 1 / 6)
    model.used_columns = used_columns_of(model)
    return model


def test_contributions_plus_bias_reproduce_the_margin(small_model, frame):
    rows = frame.head(50)
    contributions = small_model.contributions(rows)
    np.testing.assert_allclose(contributions.sum(axis=1), small_model.margin(rows), atol=1e-4)


def test_explanations_come_from_used_features_and_point_to_default(small_model, frame):
    reasons = small_model.explain(frame.head(200))
    assert all(len(r) <= 4 for r in reasons)
    cited = {reason["feature"] for row in reasons for reason in row}
    assert cited and cited <= set(small_model.used_columns)
    assert all(reason["contribution"] > 0 for row in reasons for reason in row)


def test_model_roundtrip_scores_identically(small_model, frame, tmp_path):
    from app.training.model import CreditModel as Loaded

    loaded = Loaded.load(small_model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict_pd(frame), small_model.predict_pd(frame))
    assert loaded.used_columns == small_model.used_columns


def test_gates_name_what_failed(tmp_path):
    settings = load_settings(
        data_dir=tmp_path, gate_min_auc=0.8, gate_min_approval_ratio=0.8, _env_file=None
    )
    result = gates(
        settings,
        {"test_auc": 0.76, "test_brier": 0.17, "test_fairness_age_band_min_approval_ratio": 0.9},
    )
    assert result == {
        "test_auc >= 0.8": False,
        "test_brier <= 0.25": True,
        "age-band approval ratio >= 0.8": True,
    }
