"""The feature encoder: XGBoost-safe names, one-hot categories, protected columns unused."""

from __future__ import annotations

from app.training.preprocess import FeatureEncoder
from tests.utils.datasets import german


def test_encoder_names_are_xgboost_safe_and_protected_columns_unused(frame):
    encoder = FeatureEncoder.for_dataset(german())
    assert not any(ch in name for name in encoder.feature_names for ch in "[]<")
    assert german().protected_columns
    assert not set(german().protected_columns) & set(encoder.raw_columns)
    matrix = encoder.transform(frame.head(3))
    # each categorical column is exactly one-hot for a known category
    purpose = [n for n in encoder.feature_names if n.startswith("purpose__")]
    assert (matrix[purpose].sum(axis=1) == 1).all()
    unknown = encoder.transform(frame.head(1).assign(purpose="spaceship"))
    assert unknown[purpose].sum(axis=1).iloc[0] == 0
