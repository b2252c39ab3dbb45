"""The reason catalogue: stable codes, a text for every category, values phrased, never a raw
missing value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.training.preprocess import FeatureEncoder
from app.training.reason_catalog import catalogue
from tests.utils.datasets import german
from tests.utils.training import APPLICANT, leaks_missing

ENCODER = FeatureEncoder.for_dataset(german())
REASONS = catalogue(german())
CATEGORIES = german().categories
PROTECTED_COLUMNS = german().protected_columns


def test_every_usable_column_has_a_reason_and_protected_ones_none():
    assert set(REASONS) == set(ENCODER.raw_columns)
    assert not set(REASONS) & set(PROTECTED_COLUMNS)


def test_codes_are_unique_and_well_formed():
    codes = [r.code for r in REASONS.values()]
    assert len(set(codes)) == len(codes)
    assert all(len(c) == 3 and c[0] == "R" and c[1:].isdigit() for c in codes)


def test_codes_are_stable():
    # Released codes must never be renumbered: changing this table is a breaking change.
    assert REASONS["status_of_existing_checking_account"].code == "R01"
    assert REASONS["duration_in_month"].code == "R02"
    assert REASONS["credit_history"].code == "R03"
    assert REASONS["credit_amount"].code == "R05"
    assert REASONS["credit_amount_per_age_year"].code == "R21"


def test_every_category_of_every_usable_categorical_column_has_a_text():
    for column in ENCODER.categorical:
        reason = REASONS[column]
        assert set(reason.texts) == set(CATEGORIES[column]), column
        for category in CATEGORIES[column]:
            text = reason.describe(category)
            assert text != reason.missing_text, (column, category)
            assert text and not leaks_missing(text), (column, category)
    # Distinct categories read differently, or a loan officer could not tell them apart.
    for column in ENCODER.categorical:
        texts = list(REASONS[column].texts.values())
        assert len(set(texts)) == len(texts), column


def test_no_description_leaks_none_or_nan():
    raw = pd.DataFrame([APPLICANT, dict.fromkeys(APPLICANT)])
    for column in ENCODER.raw_columns:
        for value in raw[column]:
            text = REASONS[column].describe(value)
            assert not leaks_missing(text), (column, value, text)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("status_of_existing_checking_account", "... < 0 DM", "balance below 0 DM"),
        ("status_of_existing_checking_account", "no checking account", "No checking account"),
        ("credit_history", "delay in paying off in the past", "Delays in paying off credit"),
        ("savings_account_and_bonds", "... < 100 DM", "Savings below 100 DM"),
        ("present_employment_since", "unemployed", "Currently unemployed"),
        ("present_employment_since", "... < 1 year", "Employed for less than one year"),
        ("duration_in_month", 48, "Loan duration of 48 months"),
        ("duration_in_month", 1, "Loan duration of 1 month"),
        ("credit_amount", 5951, "Credit amount of 5,951 DM"),
        ("credit_amount", 15_945.0, "Credit amount of 15,945 DM"),
        ("age_in_years", 22, "Age of applicant (22)"),
        ("monthly_installment", 5951 / 48, "Monthly installment of 124 DM"),
        (
            "installment_rate_in_percentage_of_disposable_income",
            4,
            "Installments take a high share of disposable income (4 of 4)",
        ),
        ("number_of_existing_credits_at_this_bank", 2, "2 existing credits at this bank"),
        ("credit_amount_per_age_year", 5951 / 22, "(271 DM per year of age)"),
        ("installment_burden", 45.5, "45.5 DM"),
        ("monthly_installment", 75.98, "Monthly installment of 76 DM"),
    ],
)
def test_texts_use_the_value(column, value, expected):
    assert expected in REASONS[column].describe(value)


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA, "yacht", "lots"])
def test_missing_or_unknown_values_say_no_information(missing):
    assert REASONS["status_of_existing_checking_account"].describe(missing) == (
        "No information on checking account"
    )
    assert REASONS["credit_amount"].describe(missing) == "No information on credit amount"
