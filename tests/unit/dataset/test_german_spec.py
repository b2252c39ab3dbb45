"""The shipped German credit spec declares exactly what the code's own constants hold, so
moving a module onto the spec cannot change behaviour (compared value for value)."""

from __future__ import annotations

import numpy as np
import pytest

from app.config import SHIPPED_DATASET
from app.data import schema
from app.dataset import load_dataset
from app.dataset.wording import compile_template
from app.features.transforms import APPLICATION_FEATURES, application_feature_values
from app.training.preprocess import PROTECTED_COLUMNS, RAW_FEATURES
from app.training.reason_catalog import REASONS


@pytest.fixture(scope="module")
def german():
    return load_dataset(SHIPPED_DATASET)


def test_tables_columns_and_ranges_are_the_schemas(german):
    assert list(german.tables) == list(schema.TABLES)
    for name, table in schema.TABLES.items():
        ours = german.tables[name]
        assert ours.arrow_schema == table.arrow_schema
        assert (ours.key, ours.timestamp, ours.unique_key) == (
            table.key,
            table.timestamp,
            table.unique_key,
        )
    assert german.categories == schema.CATEGORIES
    ranges = {c: (int(lo), int(hi)) for c, (lo, hi) in german.ranges.items()}
    assert ranges == {c: r for c, r in schema.RANGES.items() if c != schema.LABEL}
    assert german.request_columns == schema.REQUEST_COLUMNS
    assert german.raw_columns == schema.RAW_COLUMNS
    assert german.label == schema.LABEL
    assert german.spec.label.source == schema.RAW_LABEL
    assert german.protected_columns == PROTECTED_COLUMNS
    assert german.input_columns == RAW_FEATURES
    assert german.model_columns == tuple(c for c in RAW_FEATURES if c not in PROTECTED_COLUMNS)


def test_derived_features_are_the_transform_bit_for_bit(german):
    rng = np.random.default_rng(7)
    n = 2000
    amount = rng.integers(1, 20000, n).astype("float64")
    duration = rng.integers(0, 73, n).astype("float64")  # 0 included: x/0 is missing
    rate = rng.integers(1, 5, n).astype("float64")
    age = rng.integers(0, 90, n).astype("float64")
    amount[::17] = np.nan
    age[::13] = np.nan
    expected = application_feature_values(amount, duration, rate, age)
    ours = german.derive(
        {
            "credit_amount": amount,
            "duration_in_month": duration,
            "installment_rate_in_percentage_of_disposable_income": rate,
            "age_in_years": age,
        }
    )
    assert tuple(ours) == APPLICATION_FEATURES
    for name in APPLICATION_FEATURES:
        np.testing.assert_array_equal(ours[name], expected[name])


def test_reason_codes_subjects_and_wording_are_the_catalogues(german):
    codes = german.spec.reasons.codes
    assert list(codes) == list(REASONS)
    values = [1, 2, 3, 4, 12, 24, 45.5, 75.98, 99.95, 270.5, 1000, 5951, 123456.78]
    for column, reason in REASONS.items():
        ours = codes[column]
        assert (ours.code, ours.subject) == (reason.code, reason.subject)
        if reason.number is None:
            assert dict(german.columns[column].categories) == dict(reason.texts)
            continue
        for value in values:
            template = ours.text
            for low, text in sorted(ours.text_from.items()):
                if value >= low:
                    template = text
            assert compile_template(template, german.spec.currency)(value) == reason.describe(
                value
            ), (column, value)
