"""The training set: seeded stratified and out-of-time splits, and the checks that refuse a set
no model can come from."""

from __future__ import annotations

import pandas as pd
import pytest

from app.training.dataset import TrainingDataError, check_features, split_frame
from app.training.preprocess import FeatureEncoder
from tests.utils.datasets import german

LABEL = german().label


def test_random_split_is_seeded_stratified_and_disjoint(frame):
    a = split_frame(frame, "random", 7, 0.2, 0.2, label=LABEL, key="application_id")
    b = split_frame(frame, "random", 7, 0.2, 0.2, label=LABEL, key="application_id")
    c = split_frame(frame, "random", 8, 0.2, 0.2, label=LABEL, key="application_id")
    assert a.sizes() == {"train": 600, "validation": 200, "test": 200}
    pd.testing.assert_frame_equal(a.test, b.test)
    assert not a.test["application_id"].equals(c.test["application_id"])
    ids = [set(p["application_id"]) for p in (a.train, a.validation, a.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for part in (a.train, a.validation, a.test):
        assert part[LABEL].mean() == pytest.approx(0.3, abs=0.01)


def test_out_of_time_split_tests_on_the_newest_applications(frame):
    s = split_frame(frame, "out_of_time", 7, 0.2, 0.2, label=LABEL, key="application_id")
    assert s.train["event_timestamp"].max() <= s.validation["event_timestamp"].min()
    assert s.validation["event_timestamp"].max() <= s.test["event_timestamp"].min()


def test_single_class_and_tiny_sets_are_refused(frame):
    with pytest.raises(TrainingDataError, match="only one class"):
        split_frame(
            frame[frame[LABEL] == 0], "random", 1, 0.2, 0.2, label=LABEL, key="application_id"
        )
    with pytest.raises(TrainingDataError, match="too few"):
        split_frame(frame.head(2), "random", 1, 0.2, 0.2, label=LABEL, key="application_id")
    with pytest.raises(TrainingDataError, match="single class"):
        check_features(frame.assign(**{LABEL: 1}), FeatureEncoder.for_dataset(german()))


def test_missing_features_are_named(frame):
    with pytest.raises(TrainingDataError, match="lacks features: purpose"):
        check_features(frame.drop(columns=["purpose"]), FeatureEncoder.for_dataset(german()))
    with pytest.raises(TrainingDataError, match="no values for features: housing"):
        check_features(frame.assign(housing=None), FeatureEncoder.for_dataset(german()))
