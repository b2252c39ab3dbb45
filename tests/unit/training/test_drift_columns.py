"""What a drift check compares: the model columns the version's reference holds, without the
spec's `monitoring.drift_exclude`."""

from __future__ import annotations

import copy

import pytest
import yaml

from app.dataset import parse_dataset
from app.errors import DatasetSpecError
from app.training.reference import drift_columns
from tests.utils.datasets import german


def with_monitoring(monitoring: dict):
    data = copy.deepcopy(yaml.safe_load(german().resolved_yaml))
    data["monitoring"] = monitoring
    return parse_dataset(yaml.safe_dump(data), "edited.yaml", german().directory)


def test_every_logged_model_column_is_compared_by_default():
    dataset = german()
    numeric, categorical = drift_columns(dataset, dataset.model_columns)
    assert sorted(numeric + categorical) == sorted(dataset.model_columns)
    assert "purpose" in categorical and "credit_amount" in numeric


def test_excluded_and_unlogged_columns_are_not_compared():
    dataset = with_monitoring({"drift_exclude": ["purpose", "monthly_installment"]})
    logged = [c for c in dataset.model_columns if c != "housing"]  # an older version's
    numeric, categorical = drift_columns(dataset, logged)
    compared = set(numeric + categorical)
    assert compared == set(dataset.model_columns) - {"purpose", "monthly_installment", "housing"}


def test_excluding_a_column_the_model_lacks_is_named():
    with pytest.raises(DatasetSpecError, match=r"monitoring\.drift_exclude\.0: 'foreign_worker'"):
        with_monitoring({"drift_exclude": ["foreign_worker"]})
