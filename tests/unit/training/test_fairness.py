"""Fairness of PD decisions: four-fifths ratios, group AUCs, age bands, loggable metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from app.dataset.policy import Grouping
from app.training.fairness import (
    band,
    band_labels,
    fairness_metrics,
    fairness_report,
    fairness_summary,
)
from tests.utils.datasets import german

GROUPINGS = german().spec.fairness.groupings


def test_four_fifths_ratio_on_constructed_groups():
    # A: 10 applicants, 8 approved (PD 0.1) and 2 declined (PD 0.9); B: 4 approved, 6 declined.
    groups = pd.Series(["A"] * 10 + ["B"] * 10)
    p = [0.1] * 8 + [0.9] * 2 + [0.1] * 4 + [0.9] * 6
    y = [0] * 7 + [1] + [1, 0] + [0] * 3 + [1] + [1] * 5 + [0]
    report = fairness_report(y, p, groups, threshold=0.5).set_index("group")
    assert report.loc["A", "approval_rate"] == pytest.approx(0.8)
    assert report.loc["B", "approval_rate"] == pytest.approx(0.4)
    assert report.loc["A", "approval_rate_ratio"] == pytest.approx(1.0)
    assert report.loc["B", "approval_rate_ratio"] == pytest.approx(0.5)
    assert report.loc["A", "default_rate"] == pytest.approx(0.2)
    assert report.loc["B", "default_rate"] == pytest.approx(0.6)
    assert list(report["n"]) == [10, 10]


def test_group_auc_is_nan_for_small_or_single_class_groups():
    groups = pd.Series(["big"] * 10 + ["small"] * 9 + ["one_class"] * 10)
    y = [0, 1] * 5 + [0, 1] * 4 + [1] + [0] * 10
    p = [0.1, 0.9] * 5 + [0.1, 0.9] * 4 + [0.9] + [0.3] * 10
    report = fairness_report(y, p, groups, threshold=0.5).set_index("group")
    assert report.loc["big", "auc"] == 1.0
    assert math.isnan(report.loc["small", "auc"])  # n = 9 < 10
    assert math.isnan(report.loc["one_class", "auc"])


def test_missing_group_values_are_reported_not_dropped():
    groups = pd.Series(["A", None, "A", np.nan])
    report = fairness_report([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.3], groups, 0.5)
    assert list(report["group"]) == ["A", "(missing)"]
    assert list(report["n"]) == [2, 2]


def test_age_band_boundaries():
    ages = pd.Series([18, 25, 26, 35, 36, 50, 51, 90, 17, None], index=list("abcdefghij"))
    bands = band(ages, GROUPINGS["age_band"].edges)
    expected = ["18-25", "18-25", "26-35", "26-35", "36-50", "36-50", "51+", "51+"]
    assert list(bands.iloc[:8]) == expected
    assert bands.iloc[8:].isna().all()  # under 18 or unknown: no band
    assert bands.cat.ordered
    assert list(bands.cat.categories) == ["18-25", "26-35", "36-50", "51+"]
    assert list(bands.index) == list(ages.index)


def test_fairness_summary_and_metrics():
    frame = pd.DataFrame(
        {
            "age_in_years": [22] * 10 + [60] * 10,
            "personal_status_and_sex": ["male : single"] * 5 + ["female : x"] * 15,
        }
    )
    y = [0, 1] * 10
    p = [0.1, 0.9] * 5 + [0.9, 0.1] * 5  # perfect ranking for the young, reversed for the old
    summary = fairness_summary(y, p, frame, 0.5, GROUPINGS)
    assert set(summary) == {"age_band", "personal_status_and_sex"}
    # Categorical order is kept and empty bands are omitted.
    assert list(summary["age_band"]["group"]) == ["18-25", "51+"]

    # Approvals: male 3 of 5 (0.6), female 7 of 15, so the female ratio is (7/15) / 0.6 = 7/9.
    # Female AUC: 3 defaulters at 0.9 and 5 at 0.1 against 2 non-defaulters at 0.1 and 5 at 0.9
    # -> (3*2 wins + (3*5 + 5*2) ties / 2) / (8*7 pairs) = 18.5 / 56. Male (n = 5) has no AUC.
    female_auc = 18.5 / 56
    metrics = fairness_metrics(y, p, frame, 0.5, GROUPINGS)
    assert metrics == pytest.approx(
        {
            "fairness_age_band_min_approval_ratio": 1.0,
            "fairness_age_band_auc_min": 0.0,
            "fairness_age_band_auc_max": 1.0,
            "fairness_personal_status_and_sex_min_approval_ratio": 7 / 9,
            "fairness_personal_status_and_sex_auc_min": female_auc,
            "fairness_personal_status_and_sex_auc_max": female_auc,
        }
    )
    assert all(type(v) is float for v in metrics.values())


def test_fairness_metrics_omit_undefined_values():
    frame = pd.DataFrame({"age_in_years": [30, 40], "personal_status_and_sex": ["a", "b"]})
    metrics = fairness_metrics([0, 1], [0.1, 0.9], frame, 0.5, GROUPINGS)
    # Groups of one row have no AUC, so only the approval ratios remain.
    assert metrics == {
        "fairness_age_band_min_approval_ratio": 0.0,
        "fairness_personal_status_and_sex_min_approval_ratio": 0.0,
    }


def test_fairness_summary_names_missing_columns():
    with pytest.raises(KeyError, match="personal_status_and_sex"):
        fairness_summary(
            [0, 1], [0.1, 0.9], pd.DataFrame({"age_in_years": [30, 40]}), 0.5, GROUPINGS
        )


def test_band_labels_from_whole_and_fractional_edges():
    assert band_labels([18, 26, 51]) == ["18-25", "26-50", "51+"]
    assert band_labels([0, 0.5, 1]) == ["[0, 0.5)", "[0.5, 1)", "1+"]
    # Named bands replace the generated labels; a fraction sits in the band it starts.
    grouping = Grouping(column="ratio", edges=[0, 0.5], labels=["low", "high"])
    bands = band(pd.Series([0.1, 0.5, 2.0, -1.0]), grouping.edges, grouping.labels)
    assert bands.astype(object).tolist()[:3] == ["low", "high", "high"]
    assert pd.isna(bands.iloc[3])


def test_the_adverse_impact_ratio_comes_with_counts_its_significance_and_the_pd_gap():
    threshold = 0.5
    # favoured: 80 of 100 approved; far: 40 of 100; few: 3 of 5 (a ratio of 0.75 on 5 people).
    scores = np.concatenate(
        [
            np.r_[np.full(80, 0.2), np.full(20, 0.8)],
            np.r_[np.full(40, 0.2), np.full(60, 0.8)],
            np.r_[np.full(3, 0.2), np.full(2, 0.8)],
        ]
    )
    groups = pd.Series(["favoured"] * 100 + ["far"] * 100 + ["few"] * 5)
    y = np.r_[np.zeros(102), np.ones(103)].astype(int)
    report = fairness_report(y, scores, groups, threshold).set_index("group")
    assert report.loc[
        "favoured", ["approvals", "approval_rate_ratio", "p_value", "pd_smd"]
    ].tolist() == [
        80,
        1.0,
        1.0,
        0.0,
    ]
    assert report.loc["far", "approval_rate_ratio"] == 0.5 and report.loc["far", "approvals"] == 40
    assert report.loc["far", "p_value"] < 1e-6  # 40 of 100 against 80 of 100: not chance
    assert report.loc["few", "approval_rate_ratio"] == pytest.approx(0.75, abs=1e-12)
    assert report.loc["few", "p_value"] > 0.25  # 3 of 5: not evidence at any usual level
    # PD gap in pooled standard deviations: means 0.32 and 0.56, variances 0.0576 and 0.0864.
    pooled = math.sqrt((0.0576 + 0.0864) / 2)
    assert report.loc["far", "pd_smd"] == pytest.approx((0.56 - 0.32) / pooled, abs=1e-12)
