"""Checking data against a spec: tables split and validated as ingest does, reasons grouped."""

from __future__ import annotations

import pandas as pd
import pytest

from app.config import SHIPPED_DATA_PATH
from app.data.check import check_data, conform_columns, reason_kind, top_reasons
from app.errors import SourceError
from tests.utils.datasets import german


@pytest.mark.parametrize(
    ("reason", "kind", "example"),
    [
        ("age=150 outside [18, 100]", "age outside [18, 100]", "150"),
        ("age='abc' is not a number", "age is not a number", "'abc'"),
        ("Times-Late='x y' is not an integer", "Times-Late is not an integer", "'x y'"),
        (
            "y='maybe' is neither 'bad' (1) nor 'good' (0)",
            "y is neither 'bad' (1) nor 'good' (0)",
            "'maybe'",
        ),
        ("housing is null", "housing is null", ""),
        ("duplicate key application_id=LA01", "duplicate key application_id", "LA01"),
    ],
)
def test_a_reason_kind_leaves_the_value_out(reason, kind, example):
    assert reason_kind(reason) == (kind, example)


def test_top_reasons_count_rows_per_kind():
    reasons = pd.Series(
        ["age=150 outside [18, 100]; job is null", "age=170 outside [18, 100]", None, "job is null"]
    )
    assert top_reasons(reasons) == [
        ("age outside [18, 100]", 2, "150"),
        ("job is null", 2, ""),
    ]
    assert top_reasons(reasons, limit=1) == [("age outside [18, 100]", 2, "150")]


def test_the_shipped_file_checks_clean():
    raw = pd.read_csv(SHIPPED_DATA_PATH)
    report = check_data(raw, german())
    assert report.rows == 1000
    assert [(t.name, t.read, t.accepted) for t in report.tables] == [
        (name, 1000, 1000) for name in german().tables
    ]
    assert report.label_rate == pytest.approx(0.3)
    assert report.derived_missing == dict.fromkeys(german().derived_names, 0.0)


def test_a_bad_value_is_rejected_where_a_cast_would_crash():
    raw = pd.read_csv(SHIPPED_DATA_PATH).astype(object)
    raw.loc[0, "age_in_years"] = 30.5
    raw.loc[1, "credit_amount"] = "lots"
    report = check_data(raw, german())
    by_name = {t.name: t for t in report.tables}
    assert by_name["applicant_profile"].reasons == [("age_in_years is not an integer", 1, "30.5")]
    assert by_name["loan_applications"].rejected == 1
    assert by_name["loan_applications"].rejected_share == pytest.approx(0.001)


def test_warehouse_columns_match_in_any_case():
    raw = pd.read_csv(SHIPPED_DATA_PATH)
    shouted = raw.rename(columns=str.upper)
    conformed = conform_columns(shouted, german(), "table X")
    assert list(conformed.columns) == list(raw.columns)
    with pytest.raises(SourceError, match="table X lacks columns: purpose"):
        conform_columns(shouted.drop(columns=["PURPOSE"]), german(), "table X")
