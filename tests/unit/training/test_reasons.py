"""Reason ranking: one-hots netted per column, largest pushes towards default first, ties by
column order, protected and unused columns never cited."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from app.training.preprocess import FeatureEncoder
from app.training.reasons import aggregate_contributions, reason_codes
from tests.utils.datasets import german
from tests.utils.training import contributions, features, one_hot, raw_rows

ENCODER = FeatureEncoder.for_dataset(german())
# Includes the protected columns, which no reason may cite.
FULL_ENCODER = FeatureEncoder(
    ENCODER.numeric, (*ENCODER.categorical, *german().protected_columns), german()
)


# --- aggregation ---------------------------------------------------------------------------


def test_aggregation_sums_one_hots_per_column_and_drops_bias():
    checking = "status_of_existing_checking_account"
    contribs = contributions(
        [
            {
                one_hot(checking, "... < 0 DM"): 0.5,
                one_hot(checking, "no checking account"): -0.2,
                one_hot(checking, "0 <= ... < 200 DM"): 0.1,
                "credit_amount": 0.3,
                one_hot("purpose", "business"): 0.25,
            }
        ],
        bias=7.0,
    )
    out = aggregate_contributions(contribs, ENCODER)
    assert list(out.columns) == ENCODER.raw_columns
    assert out.loc[0, checking] == pytest.approx(0.4)
    assert out.loc[0, "credit_amount"] == pytest.approx(0.3)
    assert out.loc[0, "purpose"] == pytest.approx(0.25)
    # The bias is not a column and is not smuggled into any: totals match the features only.
    assert out.to_numpy().sum() == pytest.approx(0.95)


def test_aggregation_rejects_a_frame_from_another_encoder():
    contribs = contributions([{}], encoder=FULL_ENCODER)
    with pytest.raises(KeyError, match="unknown"):
        aggregate_contributions(contribs, ENCODER)
    with pytest.raises(KeyError, match="missing"):
        aggregate_contributions(contribs.drop(columns=["credit_amount"]), FULL_ENCODER)


# --- reason codes --------------------------------------------------------------------------


def test_top_reasons_largest_first_and_capped():
    contribs = contributions(
        [
            {
                "duration_in_month": 0.9,
                "credit_amount": 0.4,
                one_hot("savings_account_and_bonds", "... < 100 DM"): 0.7,
                "age_in_years": 0.2,
                one_hot("housing", "own"): 0.1,
                "monthly_installment": 0.05,
            }
        ]
    )
    [reasons] = reason_codes(contribs, raw_rows(), ENCODER)
    assert features(reasons) == [
        "duration_in_month",
        "savings_account_and_bonds",
        "credit_amount",
        "age_in_years",
    ]
    assert reasons[0] == {
        "code": "R02",
        "feature": "duration_in_month",
        "description": "Loan duration of 48 months",
        "contribution": 0.9,
    }
    assert reasons[1]["description"] == "Savings below 100 DM"
    assert reasons[2]["description"] == "Credit amount of 5,951 DM"
    [two] = reason_codes(contribs, raw_rows(), ENCODER, max_reasons=2)
    assert features(two) == ["duration_in_month", "savings_account_and_bonds"]
    assert reason_codes(contribs, raw_rows(), ENCODER, max_reasons=0) == [[]]


def test_only_positive_contributions_are_reasons():
    contribs = contributions(
        [{"duration_in_month": -2.0, "credit_amount": 0.3, "age_in_years": 0.0}]
    )
    [reasons] = reason_codes(contribs, raw_rows(), ENCODER)
    assert features(reasons) == ["credit_amount"]
    assert all(r["contribution"] > 0 for r in reasons)


def test_one_hots_are_netted_before_ranking():
    # +0.5 on the applicant's own checking category is cancelled by -0.45 on another one-hot.
    checking = "status_of_existing_checking_account"
    contribs = contributions(
        [
            {
                one_hot(checking, "0 <= ... < 200 DM"): 0.5,
                one_hot(checking, "no checking account"): -0.45,
                "credit_amount": 0.2,
            }
        ]
    )
    [reasons] = reason_codes(contribs, raw_rows(), ENCODER)
    assert features(reasons) == ["credit_amount", checking]
    assert reasons[1]["contribution"] == pytest.approx(0.05)
    assert reasons[1]["description"] == "Checking account balance below 200 DM"


def test_row_without_positive_contribution_has_no_reasons():
    contribs = contributions([{"credit_amount": 0.3}, {"credit_amount": -0.3}, {}])
    out = reason_codes(contribs, raw_rows(3), ENCODER)
    assert [features(r) for r in out] == [["credit_amount"], [], []]


def test_required_rows_cite_the_least_favourable_column_when_nothing_pushes_up():
    # A decline that the base rate alone explains must still say why.
    contribs = contributions(
        [
            {"credit_amount": -0.3, "duration_in_month": -0.1},
            {"credit_amount": 0.2, "duration_in_month": -0.1},
            {"credit_amount": -0.3},
        ]
    )
    require = np.array([True, True, False])
    out = reason_codes(contribs, raw_rows(3), ENCODER, require=require)
    assert [features(r) for r in out] == [["duration_in_month"], ["credit_amount"], []]
    assert out[0][0]["contribution"] == pytest.approx(-0.1)


def test_used_columns_filter_excludes_even_the_largest_contribution():
    contribs = contributions([{"duration_in_month": 5.0, "credit_amount": 0.1}])
    [unfiltered] = reason_codes(contribs, raw_rows(), ENCODER)
    assert features(unfiltered)[0] == "duration_in_month"
    [filtered] = reason_codes(
        contribs, raw_rows(), ENCODER, used_columns={"credit_amount", "age_in_years"}
    )
    assert features(filtered) == ["credit_amount"]


def test_empty_used_columns_means_no_reasons_and_empty_input_no_rows():
    # An empty set is "the model uses nothing", not "no filter": only None means unfiltered.
    contribs = contributions([{"credit_amount": 1.0}])
    assert reason_codes(contribs, raw_rows(), ENCODER, used_columns=set()) == [[]]
    assert reason_codes(contribs.iloc[:0], raw_rows().iloc[:0], ENCODER) == []


def test_used_columns_must_be_encoder_columns():
    with pytest.raises(KeyError, match="typo_column"):
        reason_codes(contributions([{}]), raw_rows(), ENCODER, used_columns={"typo_column"})


def test_ties_follow_column_order():
    contribs = contributions(
        [
            {
                one_hot("telephone", "none"): 0.3,
                "credit_amount": 0.3,
                "age_in_years": 0.3,
                "duration_in_month": 0.3,
            }
        ]
    )
    expected = [
        c
        for c in ENCODER.raw_columns
        if c in {"telephone", "credit_amount", "age_in_years", "duration_in_month"}
    ]
    for _ in range(3):
        [reasons] = reason_codes(contribs, raw_rows(), ENCODER)
        assert features(reasons) == expected


def test_missing_values_are_described_not_dropped():
    contribs = contributions(
        [
            {
                one_hot("status_of_existing_checking_account", "no checking account"): 0.8,
                "credit_amount": 0.5,
            }
        ]
    )
    raw = raw_rows(status_of_existing_checking_account=None, credit_amount=np.nan)
    [reasons] = reason_codes(contribs, raw, ENCODER)
    assert [r["description"] for r in reasons] == [
        "No information on checking account",
        "No information on credit amount",
    ]


def test_protected_columns_are_never_reasons():
    sex = "personal_status_and_sex"
    contribs = contributions(
        [
            {
                one_hot(sex, "female : divorced/separated/married"): 9.0,
                one_hot("foreign_worker", "yes"): 8.0,
                "credit_amount": 0.1,
            }
        ],
        encoder=FULL_ENCODER,
    )
    # Even if a model were trained with them and lists them as used.
    [reasons] = reason_codes(
        contribs,
        raw_rows(),
        FULL_ENCODER,
        used_columns={sex, "foreign_worker", "credit_amount"},
    )
    assert features(reasons) == ["credit_amount"]
    assert aggregate_contributions(contribs, FULL_ENCODER).loc[0, sex] == 9.0


def test_contributions_are_rounded_floats():
    contribs = contributions([{"credit_amount": 0.123456789}])
    [[reason]] = reason_codes(contribs, raw_rows(), ENCODER)
    assert reason["contribution"] == 0.123457
    assert type(reason["contribution"]) is float


def test_rows_are_matched_by_position_not_index():
    contribs = contributions([{"credit_amount": 0.1}, {"duration_in_month": 0.1}])
    raw = raw_rows(2).set_axis([10, 11])
    raw.loc[11, "duration_in_month"] = 6
    out = reason_codes(contribs, raw, ENCODER)
    assert out[1][0]["description"] == "Loan duration of 6 months"


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="rows"):
        reason_codes(contributions([{}]), raw_rows(2), ENCODER)


def test_hundred_thousand_rows():
    n = 100_000
    rng = np.random.default_rng(0)
    contribs = pd.DataFrame(
        rng.normal(size=(n, len(ENCODER.feature_names))).astype("float32"),
        columns=ENCODER.feature_names,
    )
    contribs["bias"] = -1.0
    raw = raw_rows(n)
    raw["credit_amount"] = rng.integers(250, 20_000, size=n)
    start = time.perf_counter()
    out = reason_codes(contribs, raw, ENCODER)
    elapsed = time.perf_counter() - start
    assert len(out) == n
    assert all(1 <= len(r) <= 4 for r in out)
    # Spot-check a row against a direct computation.
    i = 12_345
    aggregated = aggregate_contributions(contribs.iloc[[i]], ENCODER).iloc[0]
    assert features(out[i]) == list(aggregated[aggregated > 0].nlargest(4).index)
    print(f"100k rows in {elapsed:.2f}s")


def test_one_row_at_a_time_gives_what_the_batch_gives():
    """The request path explains one row at a time (plain Python); batch scoring explains
    arrays. Ties, zeros, NaN, required rows with nothing pushing up: the same reasons."""
    from app.training.reason_catalog import catalogue
    from app.training.reasons import citable_columns, explain_rows

    encoder = FeatureEncoder.for_dataset(german())
    citable = citable_columns(encoder)
    rng = np.random.default_rng(7)
    values = np.round(rng.normal(size=(300, len(citable))), 1)  # many exact ties
    values[rng.random(values.shape) < 0.1] = np.nan
    values[rng.random(values.shape) < 0.1] = 0.0
    values[:40] = -np.abs(values[:40])  # nothing pushes up
    require = rng.random(300) < 0.5
    raw = raw_rows(300)

    def value_of(column, rows):
        return raw[column].to_numpy(dtype="object")[rows]

    reasons = catalogue(encoder.dataset)
    batch = explain_rows(values, citable, value_of, 4, reasons, require)
    for i in range(300):
        one = explain_rows(
            values[i : i + 1],
            citable,
            lambda column, rows, i=i: value_of(column, rows + i),
            4,
            reasons,
            require[i : i + 1],
        )
        assert one == [batch[i]]
