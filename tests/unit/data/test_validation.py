"""Row validation: every kind of bad value gets a reason; good rows come out typed."""

import pandas as pd
import pytest

from app.config import SHIPPED_DATA_PATH
from app.data.ingest_table import validate_frame as run
from app.data.warehouse import build_warehouse_tables, load_raw
from tests.utils.datasets import german

PROFILE = german().tables["applicant_profile"]
APPLICATIONS = german().spine


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return build_warehouse_tables(load_raw(SHIPPED_DATA_PATH, german()), german(), seed=42)


def test_clean_rows_pass_typed(tables):
    valid, rejects = run(tables[PROFILE.name], PROFILE)
    assert len(valid) == 1000 and rejects.empty
    assert str(valid["age_in_years"].dtype) == "Int64"
    assert str(valid["event_timestamp"].dtype).startswith("datetime64")


def test_text_input_is_parsed_like_typed_input(tables):
    as_text = tables[PROFILE.name].astype(str)
    valid, rejects = run(as_text, PROFILE)
    typed, _ = run(tables[PROFILE.name], PROFILE)
    assert rejects.empty
    pd.testing.assert_frame_equal(valid, typed)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("age_in_years", "abc", "age_in_years='abc' is not a number"),
        ("age_in_years", "150", "age_in_years=150 outside [18, 100]"),
        ("age_in_years", "30.5", "age_in_years='30.5' is not an integer"),
        ("job", "astronaut", "job='astronaut' is not an allowed category"),
        ("housing", None, "housing is null"),
        ("housing", "  ", "housing is null"),
        ("event_timestamp", "yesterday-ish", "event_timestamp='yesterday-ish' is not a timestamp"),
        ("applicant_id", None, "applicant_id is null"),
    ],
)
def test_each_bad_value_is_rejected_with_its_reason(tables, column, value, reason):
    df = tables[PROFILE.name].astype(object).copy()
    df.loc[5, column] = value
    valid, rejects = run(df, PROFILE)
    assert len(valid) == 999
    assert list(rejects["reason"]) == [reason]
    # The rejects file keeps what the source held, so the row can be traced and fixed.
    assert rejects.loc[0, "applicant_id"] == df.loc[5, "applicant_id"]


def test_several_problems_in_one_row_are_all_named(tables):
    df = tables[APPLICATIONS.name].astype(object).copy()
    df.loc[0, "credit_amount"] = -5
    df.loc[0, "purpose"] = "yacht"
    _, rejects = run(df, APPLICATIONS)
    assert "credit_amount=-5 outside" in rejects.loc[0, "reason"]
    assert "purpose='yacht' is not an allowed category" in rejects.loc[0, "reason"]


def test_duplicate_keys_reject_every_copy(tables):
    df = tables[APPLICATIONS.name]
    doubled = pd.concat([df, df.iloc[[3]].assign(credit_amount=999)], ignore_index=True)
    valid, rejects = run(doubled, APPLICATIONS)
    assert len(valid) == 999
    assert len(rejects) == 2
    assert all(r.startswith("duplicate key application_id=") for r in rejects["reason"])


def test_profile_history_is_not_a_duplicate(tables):
    df = tables[PROFILE.name]
    later = df.iloc[[0]].assign(event_timestamp=df.loc[0, "event_timestamp"] + pd.Timedelta("1D"))
    valid, rejects = run(pd.concat([df, later], ignore_index=True), PROFILE)
    assert rejects.empty and len(valid) == 1001


def test_valid_rows_are_sorted_by_key(tables):
    shuffled = tables[APPLICATIONS.name].sample(frac=1, random_state=3)
    valid, _ = run(shuffled, APPLICATIONS)
    assert valid["application_id"].is_monotonic_increasing


def test_blank_text_in_a_numeric_column_counts_as_null(tables):
    df = tables[APPLICATIONS.name].astype(str)
    df.loc[2, "credit_amount"] = "   "
    valid, rejects = run(df, APPLICATIONS)
    assert list(rejects["reason"]) == ["credit_amount is null"]
    assert len(valid) == 999


@pytest.fixture(scope="module")
def gmsc_bureau():
    """GMSC's bureau table: a float with `out_of_range: missing`, counts with codes 96/98."""
    from app.dataset import load_dataset
    from tests.utils import ROOT

    return load_dataset(ROOT / "datasets" / "gmsc").tables["credit_bureau"]


def bureau_rows(**columns) -> pd.DataFrame:
    rows = {
        "borrower_id": ["B1", "B2", "B3", "B4"],
        "event_timestamp": pd.Timestamp("2024-01-01", tz="UTC"),
        "RevolvingUtilizationOfUnsecuredLines": [0.5, 5000.0, None, 1.25],
        "NumberOfOpenCreditLinesAndLoans": [1, 2, 3, 4],
        "NumberRealEstateLoansOrLines": [0, 1, 2, 3],
        "NumberOfTime30-59DaysPastDueNotWorse": [0.0, 96.0, 98.0, None],
        "NumberOfTime60-89DaysPastDueNotWorse": ["0", "96", " ", "2"],
        "NumberOfTimes90DaysLate": pd.array([0, 98, None, 1], dtype="Int64"),
    }
    return pd.DataFrame({**rows, **columns})


def test_codes_blanks_and_out_of_range_values_read_as_missing(gmsc_bureau):
    valid, rejects = run(bureau_rows(), gmsc_bureau)
    assert rejects.empty
    assert valid["revolving_utilization"].tolist()[::3] == [0.5, 1.25]
    assert valid["revolving_utilization"].isna().tolist() == [False, True, True, False]
    assert valid["past_due_30_59_days"].isna().tolist() == [False, True, True, True]
    assert valid["past_due_60_89_days"].tolist()[::3] == [0, 2]
    assert valid["past_due_60_89_days"].isna().tolist() == [False, True, True, False]
    assert valid["past_due_90_days"].isna().tolist() == [False, True, True, False]
    assert str(valid["past_due_90_days"].dtype) == "Int64"


def test_a_number_too_large_for_an_integer_is_rejected_not_a_crash(gmsc_bureau):
    from dataclasses import replace

    from app.dataset.spec import Column

    huge = [1e20, 2, 1e300, 4]
    # With a range, the range rejects it, shown short.
    _, rejects = run(bureau_rows(NumberOfOpenCreditLinesAndLoans=huge), gmsc_bureau)
    assert list(rejects["reason"]) == [
        "NumberOfOpenCreditLinesAndLoans=1e+20 outside [0, 100]",
        "NumberOfOpenCreditLinesAndLoans=1e+300 outside [0, 100]",
    ]
    # Without one, nothing else would catch it before the cast to Int64.
    specs = dict(gmsc_bureau.specs)
    specs["open_credit_lines"] = Column(type="int", source="NumberOfOpenCreditLinesAndLoans")
    unbounded = replace(gmsc_bureau, specs=specs)
    valid, rejects = run(bureau_rows(NumberOfOpenCreditLinesAndLoans=huge), unbounded)
    assert list(rejects["reason"]) == [
        "NumberOfOpenCreditLinesAndLoans=1e+20 is too large for an integer",
        "NumberOfOpenCreditLinesAndLoans=1e+300 is too large for an integer",
    ]
    assert valid["open_credit_lines"].tolist() == [2, 4]
