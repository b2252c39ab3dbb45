"""The shipped German credit spec declares exactly what the code's own constants hold, so
moving a module onto the spec cannot change behaviour (compared value for value)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast.transformation.udf_rehydrate import rehydrate_udf_from_source

from app.config import SHIPPED_DATASET
from app.dataset import load_dataset
from app.features.definitions import UDF_NAME, udf_source
from app.training.preprocess import FeatureEncoder
from app.training.reason_catalog import catalogue
from tests.unit.dataset import german_former as schema

# The reason texts the catalogue gave before it was built from the spec (code, and the text of
# each value), recorded from the former hand-written catalogue.
GOLDEN_REASONS = Path(__file__).with_name("german_reasons.json")
PROTECTED = ("personal_status_and_sex", "foreign_worker")
APPLICATION_FEATURES = ("monthly_installment", "installment_burden", "credit_amount_per_age_year")


def application_feature_values(amount, duration, rate, age):
    """The derived features as the code defined them before the spec did (the reference)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        monthly = np.where(duration > 0, amount / duration, np.nan)
        per_age = np.where(age > 0, amount / age, np.nan)
        out = {
            "monthly_installment": monthly,
            "installment_burden": monthly * rate / 4.0,
            "credit_amount_per_age_year": per_age,
        }
    return {k: np.where(np.isfinite(v), v, np.nan) for k, v in out.items()}


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
    assert german.protected_columns == PROTECTED
    raw_features = tuple(
        dict.fromkeys(
            [
                *schema.REQUEST_COLUMNS,
                *schema.PROFILE.feature_columns,
                *schema.FINANCIALS.feature_columns,
                *APPLICATION_FEATURES,
            ]
        )
    )
    assert german.input_columns == raw_features
    assert german.model_columns == tuple(c for c in raw_features if c not in PROTECTED)
    encoder = FeatureEncoder.for_dataset(german)
    assert encoder.raw_columns == [
        *(c for c in german.model_columns if c not in schema.CATEGORIES),
        *(c for c in german.model_columns if c in schema.CATEGORIES),
    ]


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
    # The frame form (training) and the function Feast's on-demand view runs, rebuilt from its
    # source text as `feast serve` rebuilds it, give the same bits.
    frame = pd.DataFrame(
        {
            "credit_amount": amount,
            "duration_in_month": duration,
            "installment_rate_in_percentage_of_disposable_income": rate,
            "age_in_years": age,
        }
    )
    udf = rehydrate_udf_from_source(udf_source(german), preferred_name=UDF_NAME)
    for derived in (german.derive_frame(frame), udf(frame)):
        assert tuple(derived.columns) == APPLICATION_FEATURES
        for name in APPLICATION_FEATURES:
            np.testing.assert_array_equal(derived[name].to_numpy(), expected[name])


def test_reason_codes_and_wording_are_the_former_catalogues(german):
    golden = json.loads(GOLDEN_REASONS.read_text())
    reasons = catalogue(german)
    assert list(reasons) == list(golden)
    for column, expected in golden.items():
        assert reasons[column].code == expected["code"]
        for value, text in expected["texts"]:
            assert reasons[column].describe(value) == text, (column, value)
