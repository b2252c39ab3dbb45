"""Drafting a spec from data: names, types, nulls, unknown-value codes, ranges, the label's
coding and the wording; every draft loads and accepts the rows it was drafted from."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from app.config import SHIPPED_DATA_PATH
from app.data.check import check_data
from app.dataset import Dataset, parse_dataset
from app.dataset.infer import (
    InferError,
    InferOptions,
    canonical_name,
    draft_spec,
    infer_spec,
    infer_type,
    label_coding,
    render,
    sentinels,
    subject_of,
    widened_range,
)
from app.dataset.types import CANONICAL
from tests.utils import ROOT

GMSC_CSV = ROOT / "datasets" / "gmsc" / "gmsc.csv"
PAST_DUES = {
    "NumberOfTime30-59DaysPastDueNotWorse",
    "NumberOfTimes90DaysLate",
    "NumberOfTime60-89DaysPastDueNotWorse",
}


def drafted(frame: pd.DataFrame, tmp_path, **options) -> tuple[str, Dataset]:
    """The draft's text and the dataset it loads as (from the directory it would be in)."""
    options.setdefault("flat_file", "data.csv")
    text = infer_spec(lambda: frame, InferOptions(**options))
    return text, parse_dataset(text, "draft.yaml", tmp_path)


def accepts_all(frame: pd.DataFrame, dataset: Dataset) -> None:
    report = check_data(frame, dataset)
    assert [(t.name, t.rejected, t.reasons) for t in report.tables] == [
        (t.name, 0, []) for t in report.tables
    ]


@pytest.fixture(scope="module")
def gmsc() -> pd.DataFrame:
    return pd.read_csv(GMSC_CSV)


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return pd.read_csv(SHIPPED_DATA_PATH)


# --- names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("NumberOfTime30-59DaysPastDueNotWorse", "number_of_time30_59_days_past_due_not_worse"),
        ("SeriousDlqin2yrs", "serious_dlqin2yrs"),
        ("RevolvingUtilizationOfUnsecuredLines", "revolving_utilization_of_unsecured_lines"),
        ("NumberOfTimes90DaysLate", "number_of_times90_days_late"),
        ("age", "age"),
        ("Loan Amount", "loan_amount"),
        ("HTTPStatusCode", "http_status_code"),
        ("credit_amount", "credit_amount"),
        ("__x--y__", "x_y"),
        ("1st payment", "c_1st_payment"),
        ("Ämter", "amter"),
        ("???", "column"),
        ("A" * 100, "a" * 63),
    ],
)
def test_canonical_names_are_snake_case(source, name):
    assert canonical_name(source) == name


@given(st.text(max_size=80))
def test_any_column_name_gets_a_name_the_spec_accepts(source):
    assert re.fullmatch(CANONICAL, canonical_name(source))


def test_the_subject_of_a_reason_reads_as_words():
    assert subject_of("NumberOfTime30-59DaysPastDueNotWorse") == (
        "number of time 30-59 days past due not worse"
    )
    assert subject_of("monthly_income") == "monthly income"
    assert subject_of("HTTPStatus") == "HTTP status"


# --- values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, 2, 3], "int"),
        ([1.0, np.nan, 3.0], "int"),  # an integer column with a gap reads as float
        ([0.5, 1.0], "float"),
        ([1e20, 2.0], "float"),  # whole, but no int64 holds it
        ([True, False, True], "bool"),
        ([True, None, False], "bool"),
        (["a", "b", "a", "b", " "], "category"),
        (["x1", "x2", "x3", "x4"], "string"),
        (["2024-01-05", "2024-02-01 10:00", None], "timestamp"),
        (["12", "13", "12", "13"], "int"),  # numbers read as text (a typed-less source)
        ([np.nan, np.nan], "float"),
    ],
)
def test_types(values, kind):
    assert infer_type(pd.Series(values)) == kind


@pytest.mark.parametrize(
    ("values", "codes"),
    [
        ([0, 1, 2, 0, 13, 96, 98, 98], [96, 98]),
        ([0, 5, 80, -1, -1], [-1]),
        ([21, 45, 70, 99], []),  # an age of 99 is an age
        ([1500, 4000, 9999, 25000], []),  # an income of 9,999 is an income
        ([60, 70, 96], []),  # not far enough outside the rest
        ([98, 98], []),  # nothing else to be outside of
        ([-5, 0, -1], []),  # negative values are real here
    ],
)
def test_only_sentinel_looking_values_far_outside_the_rest_are_codes(values, codes):
    assert sentinels(pd.Series(values, dtype="float64")) == codes


@pytest.mark.parametrize(
    ("low", "high", "integer"),
    [(21, 103, True), (0, 5, True), (0.0015, 2.937, False), (3, 3, True)],
)
def test_ranges_hold_every_value_seen(low, high, integer):
    lo, hi = widened_range(low, high, integer)
    assert lo <= low and hi >= high and lo >= 0
    assert all(isinstance(v, int) for v in (lo, hi)) == integer


@pytest.mark.parametrize(
    ("values", "positive", "negative"),
    [
        ([0, 1, 0, 0], 1, 0),
        ([1, 0, 1, 1], 1, 0),  # 1 is a default even when most rows are
        (["good", "bad", "good"], "bad", "good"),
        (["no", "yes", "no"], "yes", "no"),
        ([True, False], True, False),
        ([1, 2, 1, 1], 2, 1),  # no word says which: the rarer value
        ([1.0, np.nan, 0.0], 1, 0),
    ],
)
def test_the_label_positive_is_the_default(values, positive, negative):
    found_positive, found_negative, _ = label_coding(pd.Series(values), "y")
    assert (found_positive, found_negative) == (positive, negative)
    assert type(found_positive) is type(positive)


def test_a_label_needs_two_values():
    with pytest.raises(InferError, match=r"label column 'y' needs exactly two values .* 3: "):
        label_coding(pd.Series(["a", "b", "c"]), "y")


# --- whole drafts ---------------------------------------------------------------------


def test_gmsc_draft_loads_names_codes_and_nulls(gmsc, tmp_path):
    text, dataset = drafted(
        gmsc, tmp_path, label="SeriousDlqin2yrs", entity="borrower_id", currency="USD"
    )
    columns = dataset.columns
    # Canonical names keep the file's names as their source.
    assert columns["number_of_time30_59_days_past_due_not_worse"].source == (
        "NumberOfTime30-59DaysPastDueNotWorse"
    )
    assert columns["age"].source is None
    assert all(re.fullmatch(CANONICAL, name) for name in columns)
    coded = {c.source for c in columns.values() if c.missing_codes}
    assert coded == PAST_DUES
    assert all(c.missing_codes == [96, 98] for c in columns.values() if c.missing_codes)
    assert columns["monthly_income"].nullable and columns["number_of_dependents"].nullable
    assert not columns["age"].nullable
    assert columns["monthly_income"].type == "int" and columns["monthly_income"].unit == "money"
    assert columns["debt_ratio"].type == "float"
    label = dataset.spec.label
    assert (label.source, label.positive, label.negative) == ("SeriousDlqin2yrs", 1, 0)
    assert dataset.request_columns == ()
    assert dataset.spine.feature_columns == ["borrower_id", "is_default"]
    assert dataset.spec.sources.flat_file.entity_source is None  # ids assigned by row
    assert len(dataset.model_columns) == 10
    accepts_all(gmsc, dataset)
    # Each guess is marked for a person to settle.
    lines = text.splitlines()
    assert any("missing_codes: [96, 98]  # review: 7 rows hold 96, 98" in line for line in lines)
    assert any("nullable: true  # review: 584 of 3,000 rows" in line for line in lines)
    for column in dataset.model_columns:
        (line,) = [x for x in lines if x.startswith(f"    {column}: {{code: ")]
        assert "# review: wording drafted from the name" in line


def test_gmsc_wording_uses_the_formats(gmsc, tmp_path):
    _, dataset = drafted(
        gmsc, tmp_path, label="SeriousDlqin2yrs", entity="borrower_id", currency="USD"
    )
    codes = dataset.spec.reasons.codes
    assert codes["monthly_income"].text == "Monthly income: {value|money}"
    assert codes["revolving_utilization_of_unsecured_lines"].text.endswith("{value|percent}")
    assert codes["number_of_times90_days_late"].subject == "number of times 90 days late"
    assert [r.code for r in codes.values()] == [f"R{i:02d}" for i in range(1, 11)]


def test_german_draft_loads_and_accepts_the_file(german, tmp_path):
    request = ("credit_amount", "duration_in_month", "purpose")
    text, dataset = drafted(
        german, tmp_path, label="creditability", entity="applicant_id", request=request
    )
    label = dataset.spec.label
    assert (label.name, label.source, label.positive, label.negative) == (
        "is_default",
        "creditability",
        "bad",
        "good",
    )
    assert dataset.request_columns == request
    assert dataset.spine.feature_columns == ["applicant_id", *request, "is_default"]
    assert dataset.categories["foreign_worker"] == ("no", "yes")
    purpose = dataset.columns["purpose"].categories
    assert purpose["car (new)"] == "car (new)"  # texts are the codes until a person writes them
    assert not any(c.nullable for c in dataset.columns.values())
    assert dataset.spec.reasons.codes["duration_in_month"].text == (
        "Duration in month: {value|count:month}"
    )
    # Likely protected attributes are pointed out, not decided.
    assert "personal_status_and_sex:\n    type: category  # review: a protected attribute?" in text
    assert dataset.protected_columns == ()
    accepts_all(german, dataset)


@pytest.fixture
def mixed() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    return pd.DataFrame(
        {
            "CustomerID": [f"C{i:04d}" for i in range(n)],
            "AppliedAt": pd.date_range("2023-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "Defaulted": rng.random(n) < 0.2,
            "Loan Amount": rng.integers(1000, 50000, n),
            "HasMortgage": rng.random(n) < 0.4,
            "MonthsSinceLastDelinq": np.where(rng.random(n) < 0.3, -1, rng.integers(0, 80, n)),
            "Region": rng.choice(["north", "south", "yes", "1"], n),
            "Notes": [f"free text {i}" for i in range(n)],
            "Score-Band": rng.choice(["A", "B", " "], n),
            "interest_rate": rng.random(n) * 0.3,
        }
    )


def test_ids_times_flags_codes_and_text_from_the_data(mixed, tmp_path):
    _, dataset = drafted(
        mixed,
        tmp_path,
        label="Defaulted",
        entity="CustomerID",
        timestamp="AppliedAt",
        request=("loan_amount", "Region"),
    )
    flat = dataset.spec.sources.flat_file
    assert (flat.entity_source, flat.timestamp_source) == ("CustomerID", "AppliedAt")
    assert dataset.entity_key == "customer_id" and dataset.spec.entity.name == "customer"
    assert dataset.spine.timestamp == "applied_at"
    assert dataset.request_columns == ("loan_amount", "region")
    columns = dataset.columns
    assert columns["has_mortgage"].type == "bool"
    assert columns["months_since_last_delinq"].missing_codes == [-1]
    assert columns["score_band"].nullable and columns["score_band"].codes == ("A", "B")
    # YAML would read these codes as a bool and a number: they must stay text.
    assert columns["region"].codes == ("1", "north", "south", "yes")
    # Free text is declared but in no table, so never a model input.
    assert columns["notes"].type == "string"
    assert "notes" not in dataset.input_columns
    assert dataset.spec.label.positive is True
    assert dataset.spec.reasons.codes["interest_rate"].text == "Interest rate: {value|percent}"
    accepts_all(mixed, dataset)


def test_a_name_taken_by_the_draft_gets_a_suffix(tmp_path):
    frame = pd.DataFrame(
        {"is_default": [1, 2, 3, 4], "Is Default": [5, 6, 7, 8], "bad": [0, 1, 0, 0]}
    )
    _, dataset = drafted(frame, tmp_path, label="bad", entity="id")
    assert {c: col.source for c, col in dataset.columns.items()} == {
        "is_default_2": "is_default",
        "is_default_3": "Is Default",
    }
    accepts_all(frame, dataset)


def test_the_options_must_name_columns_of_the_data(gmsc):
    options = InferOptions(label="Outcome", entity="borrower_id")
    with pytest.raises(InferError, match=r"label column 'Outcome' is not in the data .*age"):
        draft_spec(gmsc, options)
    options = InferOptions(label="SeriousDlqin2yrs", entity="id", request=("SeriousDlqin2yrs",))
    with pytest.raises(InferError, match="are the label, entity or timestamp column"):
        draft_spec(gmsc, options)
    with pytest.raises(InferError, match="no rows"):
        draft_spec(gmsc.head(0), InferOptions(label="SeriousDlqin2yrs", entity="id"))


def test_the_text_is_yaml_with_the_notes_as_comments(gmsc):
    draft = draft_spec(gmsc.head(500), InferOptions(label="SeriousDlqin2yrs", entity="id"))
    text = render(draft)
    assert text.startswith("# Drafted by `python -m jobs.dataset infer` (500 rows).")
    # Comments carry the notes; the data is the draft's spec exactly.
    assert yaml.safe_load(text) == json.loads(json.dumps(draft.spec))
    assert text.count("# review:") == len(draft.notes)


def test_application_times_must_parse(mixed):
    mixed = mixed.assign(AppliedAt=mixed["AppliedAt"].where(mixed.index != 3, "soon"))
    options = InferOptions(label="Defaulted", entity="CustomerID", timestamp="AppliedAt")
    with pytest.raises(
        InferError, match=r"'AppliedAt': 1 of 200 values are not times \(e\.g\. 'soon'\)"
    ):
        draft_spec(mixed, options)
