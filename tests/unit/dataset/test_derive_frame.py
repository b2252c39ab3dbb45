"""Derived features of a frame (Feast's on-demand view and training), by the German spec."""

import math

import pandas as pd

from tests.utils.datasets import german


def application_features(df: pd.DataFrame) -> pd.DataFrame:
    return german().derive_frame(df)


def frame(**columns) -> pd.DataFrame:
    base = {
        "credit_amount": [1200],
        "duration_in_month": [12],
        "installment_rate_in_percentage_of_disposable_income": [2],
        "age_in_years": [30],
    }
    base.update({k: [v] for k, v in columns.items()})
    return pd.DataFrame(base)


def test_values():
    out = application_features(frame()).iloc[0]
    assert out["monthly_installment"] == 100.0
    assert out["installment_burden"] == 50.0
    assert out["credit_amount_per_age_year"] == 40.0
    assert list(application_features(frame()).columns) == list(german().derived_names)


def test_zero_duration_or_age_is_unknown_not_infinite():
    out = application_features(frame(duration_in_month=0, age_in_years=0)).iloc[0]
    assert math.isnan(out["monthly_installment"])
    assert math.isnan(out["credit_amount_per_age_year"])


def test_keeps_row_index():
    df = frame().set_axis([7])
    assert list(application_features(df).index) == [7]
