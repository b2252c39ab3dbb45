"""Calibration backtesting per PD grade: Jeffreys intervals and the grades they flag."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from app.domain import PREDICTION
from app.training.calibration import (
    OVER,
    UNDER,
    MasterScale,
    brier_by_variant,
    calibration_by_grade,
    flagged,
    jeffreys_interval,
)

SCALE = MasterScale((0.05, 0.10, 0.20, 0.30, 0.50))


def decisions(groups, variant="champion"):
    """(n, predicted PD, defaults) per group -> join_outcomes-shaped rows."""
    rows = []
    for n, pd_value, defaults in groups:
        rows += [(variant, pd_value, 1 if i < defaults else 0) for i in range(n)]
    frame = pd.DataFrame(rows, columns=["variant", PREDICTION, "defaulted"])
    frame["defaulted"] = frame["defaulted"].astype("Int64")
    return frame


def test_a_grade_defaulting_twice_as_often_as_predicted_is_flagged_and_only_that_grade():
    joined = decisions([(400, 0.08, 32), (400, 0.15, 120), (400, 0.25, 100), (200, 0.60, 120)])
    table = calibration_by_grade(joined, SCALE)
    assert table["grade"].tolist() == [2, 3, 4, 6]
    assert table.set_index("grade")["flag"].to_dict() == {2: "", 3: UNDER, 4: "", 6: ""}
    row = table.set_index("grade").loc[3]
    assert (row["outcomes"], row["defaults"]) == (400, 120)
    assert row["predicted_pd"] == pytest.approx(0.15) and row["observed_rate"] == 0.30
    assert row["interval_low"] > 0.15 and row["pd_range"] == "10.0% - 20.0%"
    assert flagged(table) == [
        "champion grade 3 (10.0% - 20.0%): under-predicted, predicted 0.150, observed 0.300 "
        f"[{row['interval_low']:.3f}, {row['interval_high']:.3f}] over 400 outcomes"
    ]


def test_a_grade_defaulting_far_less_than_predicted_is_over_predicted():
    table = calibration_by_grade(decisions([(300, 0.40, 30)]), SCALE)
    assert table["flag"].tolist() == [OVER]


def test_the_interval_is_the_jeffreys_interval():
    for defaults, outcomes in ((3, 40), (120, 400), (17, 1000)):
        want = proportion_confint(defaults, outcomes, alpha=0.05, method="jeffreys")
        assert jeffreys_interval(defaults, outcomes, 0.95) == pytest.approx(want, abs=1e-12)
    # At the ends the count pins the bound (no defaults: 0; all defaulted: 1).
    assert jeffreys_interval(0, 50, 0.95)[0] == 0.0
    assert jeffreys_interval(50, 50, 0.95)[1] == 1.0


def test_a_pd_on_a_cut_point_belongs_to_the_grade_below_it():
    assert SCALE.grades(np.array([0.0, 0.05, 0.0500001, 0.5, 0.99])).tolist() == [1, 1, 2, 5, 6]
    assert SCALE.ranges()[0] == "<= 5.0%" and SCALE.ranges()[-1] == "> 50.0%"


@pytest.mark.parametrize("cuts", [(), (0.2, 0.1), (0.0, 0.5), (0.5, 1.0)])
def test_a_master_scale_must_increase_inside_zero_and_one(cuts):
    with pytest.raises(ValueError, match="cut points"):
        MasterScale(cuts)


def test_decisions_without_outcomes_are_left_out_and_variants_kept_apart():
    joined = pd.concat(
        [decisions([(100, 0.15, 15)]), decisions([(100, 0.15, 30)], variant="challenger")],
        ignore_index=True,
    )
    joined.loc[joined.index[:10], "defaulted"] = pd.NA  # ten of the champion's, unlabelled
    table = calibration_by_grade(joined, SCALE)
    assert table[["variant", "outcomes"]].values.tolist() == [["challenger", 100], ["champion", 90]]
    assert calibration_by_grade(joined.iloc[:0], SCALE).empty
    brier = brier_by_variant(decisions([(2, 0.25, 1)]))
    assert brier == {"champion": pytest.approx((0.75**2 + 0.25**2) / 2)}
