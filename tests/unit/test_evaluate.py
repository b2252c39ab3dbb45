"""PD evaluation: hand-computed metrics, calibration, fairness ratios, age bands and figures."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy.stats import ks_2samp
from sklearn.metrics import log_loss

from app.training.evaluate import (
    AGE_BANDS,
    EvaluationResult,
    age_band,
    calibration_table,
    evaluate_scores,
    evaluation_bundle,
    fairness_metrics,
    fairness_report,
    fairness_summary,
    plot_calibration,
    plot_confusion,
    plot_roc,
    plot_score_distribution,
    score_distribution,
)
from tests.utils import ROOT


def applicants(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Calibrated synthetic PDs, Bernoulli labels and the raw fairness attributes."""
    rng = np.random.default_rng(seed)
    pd_scores = rng.beta(2, 5, n)
    y = rng.binomial(1, pd_scores)
    frame = pd.DataFrame(
        {
            "age_in_years": rng.integers(18, 80, n),
            "personal_status_and_sex": rng.choice(
                ["male : single", "female : divorced/separated/married"], n
            ),
        }
    )
    return y, pd_scores, frame


# --- evaluate_scores --------------------------------------------------------------------------


def test_perfect_separation():
    m = evaluate_scores([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], threshold=0.5)
    assert m["auc"] == 1.0
    assert m["gini"] == 1.0
    assert m["ks"] == 1.0


def test_reversed_scores():
    m = evaluate_scores([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], threshold=0.5)
    assert m["auc"] == 0.0
    assert m["gini"] == -1.0
    # KS is a distance between the CDFs, so a perfectly wrong ranking separates just as well.
    assert m["ks"] == 1.0


def test_four_row_example_by_hand():
    y = [0, 1, 1, 0]
    p = [0.2, 0.6, 0.9, 0.7]
    m = evaluate_scores(y, p, threshold=0.5)
    # Defaulter/non-defaulter pairs ranked right: (0.6>0.2), (0.9>0.2), (0.9>0.7); wrong: 0.6<0.7.
    assert m["auc"] == pytest.approx(0.75)
    assert m["gini"] == pytest.approx(0.5)
    # CDF gap after 0.2: non-defaulters 1/2, defaulters 0 -> 0.5 (again after 0.7).
    assert m["ks"] == pytest.approx(0.5)
    # ((0.2-0)^2 + (0.6-1)^2 + (0.9-1)^2 + (0.7-0)^2) / 4 = (0.04 + 0.16 + 0.01 + 0.49) / 4
    assert m["brier"] == pytest.approx(0.175)
    expected_log_loss = -(math.log(0.8) + math.log(0.6) + math.log(0.9) + math.log(0.3)) / 4
    assert m["log_loss"] == pytest.approx(expected_log_loss)
    assert m["log_loss"] == pytest.approx(0.5108256, abs=1e-6)
    assert m["log_loss"] == pytest.approx(log_loss(y, p))


def test_confusion_counts_and_rates_at_threshold():
    y = [0, 0, 0, 1, 1, 1, 0, 1]
    p = [0.1, 0.3, 0.5, 0.5, 0.7, 0.2, 0.6, 0.9]
    m = evaluate_scores(y, p, threshold=0.5)
    # PD == threshold is declined: rows 2 (repaid) and 3 (default) are positives.
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 2, 2, 1)
    assert m["n"] == 8
    assert m["default_rate"] == 0.5
    assert m["approval_rate"] == pytest.approx(3 / 8)
    assert m["default_rate_approved"] == pytest.approx(1 / 3)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert all(isinstance(v, float) for v in m.values())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_matches_scipy_two_sample_statistic(seed):
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.3, 2000)
    # Rounded scores, so ties within and across classes are exercised too.
    p = np.round(np.clip(rng.normal(0.3 + 0.15 * y, 0.15), 0, 1), 2)
    expected = ks_2samp(p[y == 1], p[y == 0]).statistic
    assert evaluate_scores(y, p, threshold=0.5)["ks"] == pytest.approx(expected, abs=1e-12)


def test_single_class_gives_nan_discrimination_without_raising():
    with warnings.catch_warnings():
        # sklearn warns (or raises) on one class; none of that may leak out.
        warnings.simplefilter("error")
        m = evaluate_scores([0, 0, 0, 0], [0.1, 0.2, 0.6, 0.9], threshold=0.5)
    assert math.isnan(m["auc"])
    assert math.isnan(m["gini"])
    assert math.isnan(m["ks"])
    assert math.isnan(m["recall"])  # no defaulters to catch
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.36 + 0.81) / 4)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (0, 2, 2, 0)


def test_nobody_approved_leaves_default_rate_among_approved_undefined():
    m = evaluate_scores([0, 1], [0.6, 0.9], threshold=0.5)
    assert m["approval_rate"] == 0.0
    assert math.isnan(m["default_rate_approved"])


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1], [0.1], "rows"),
        ([0, 2], [0.1, 0.2], "only 0"),
        ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
        ([0, 1], [0.1, float("nan")], "NaN"),
        ([], [], "zero rows"),
    ],
)
def test_rejects_invalid_inputs(y, p, message):
    with pytest.raises(ValueError, match=message):
        evaluate_scores(y, p, threshold=0.5)


def test_accepts_pandas_series_with_unrelated_indexes():
    y = pd.Series([0, 1, 1, 0], index=[10, 11, 12, 13])
    p = pd.Series([0.2, 0.6, 0.9, 0.7], index=[3, 2, 1, 0])
    # Positional, not index-aligned: same result as the plain lists.
    assert evaluate_scores(y, p, 0.5)["auc"] == pytest.approx(0.75)


# --- tables -----------------------------------------------------------------------------------


def test_calibration_of_calibrated_scores_is_within_tolerance():
    y, p, _ = applicants(50_000)
    table = calibration_table(y, p, bins=10)
    assert list(table.columns) == ["bin", "n", "mean_pd", "observed_rate"]
    assert list(table["bin"]) == list(range(1, 11))
    assert table["n"].sum() == 50_000
    assert table["n"].between(4_990, 5_010).all()  # quantile bins are equal-sized
    assert table["mean_pd"].is_monotonic_increasing
    assert (table["observed_rate"] - table["mean_pd"]).abs().max() < 0.05


def test_calibration_exposes_miscalibrated_scores():
    rng = np.random.default_rng(1)
    p = rng.beta(2, 5, 50_000)
    y = rng.binomial(1, p / 2)  # the model overstates risk twofold
    table = calibration_table(y, p, bins=10)
    assert (table["mean_pd"] - table["observed_rate"]).max() > 0.05


def test_calibration_with_identical_scores_is_one_bin():
    table = calibration_table([0, 1, 1, 0], [0.3] * 4)
    assert table.to_dict("records") == [{"bin": 1, "n": 4, "mean_pd": 0.3, "observed_rate": 0.5}]


def test_score_distribution_uses_fixed_bins_on_unit_interval():
    table = score_distribution([0.0, 0.07, 0.07, 0.5, 1.0], bins=20)
    assert len(table) == 20
    assert table["bin_lower"].iloc[0] == 0.0
    assert table["bin_upper"].iloc[-1] == 1.0
    counts = dict(zip(table["bin_lower"].round(2), table["count"], strict=True))
    assert counts[0.0] == 1
    assert counts[0.05] == 2
    assert counts[0.5] == 1
    assert counts[0.95] == 1  # 1.0 falls in the closed last bin
    assert table["count"].sum() == 5
    assert table["share"].sum() == pytest.approx(1.0)


# --- fairness ---------------------------------------------------------------------------------


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
    bands = age_band(ages)
    expected = ["18-25", "18-25", "26-35", "26-35", "36-50", "36-50", "51+", "51+"]
    assert list(bands.iloc[:8]) == expected
    assert bands.iloc[8:].isna().all()  # under 18 or unknown: no band
    assert bands.cat.ordered
    assert list(bands.cat.categories) == list(AGE_BANDS)
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
    summary = fairness_summary(y, p, frame, threshold=0.5)
    assert set(summary) == {"age_band", "personal_status_and_sex"}
    # Categorical order is kept and empty bands are omitted.
    assert list(summary["age_band"]["group"]) == ["18-25", "51+"]

    # Approvals: male 3 of 5 (0.6), female 7 of 15, so the female ratio is (7/15) / 0.6 = 7/9.
    # Female AUC: 3 defaulters at 0.9 and 5 at 0.1 against 2 non-defaulters at 0.1 and 5 at 0.9
    # -> (3*2 wins + (3*5 + 5*2) ties / 2) / (8*7 pairs) = 18.5 / 56. Male (n = 5) has no AUC.
    female_auc = 18.5 / 56
    metrics = fairness_metrics(y, p, frame, threshold=0.5)
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
    metrics = fairness_metrics([0, 1], [0.1, 0.9], frame, threshold=0.5)
    # Groups of one row have no AUC, so only the approval ratios remain.
    assert metrics == {
        "fairness_age_band_min_approval_ratio": 0.0,
        "fairness_personal_status_and_sex_min_approval_ratio": 0.0,
    }


def test_fairness_summary_names_missing_columns():
    with pytest.raises(KeyError, match="personal_status_and_sex"):
        fairness_summary([0, 1], [0.1, 0.9], pd.DataFrame({"age_in_years": [30, 40]}), 0.5)


# --- figures and bundle -----------------------------------------------------------------------


def test_plots_draw_the_data():
    y, p, _ = applicants(500)
    table = calibration_table(y, p)
    figures = [
        plot_calibration(table),
        plot_roc(y, p),
        plot_score_distribution(y, p),
        plot_confusion(evaluate_scores(y, p, 0.5)),
    ]
    try:
        assert matplotlib.get_backend().lower() == "agg"
        calibration, roc, distribution, confusion = figures
        model_line = calibration.axes[0].get_lines()[1]
        np.testing.assert_allclose(model_line.get_xdata(), table["mean_pd"])
        assert "AUC" in roc.axes[0].get_title()
        assert len(distribution.axes[0].patches) == 2 * 20  # two overlaid 20-bin histograms
        m = evaluate_scores(y, p, 0.5)
        expected = [[m["tn"], m["fp"]], [m["fn"], m["tp"]]]
        np.testing.assert_array_equal(confusion.axes[0].images[0].get_array(), expected)
    finally:
        for fig in figures:
            plt.close(fig)


def test_roc_plot_of_single_class_says_why():
    fig = plot_roc([0, 0, 0], [0.1, 0.2, 0.3])
    try:
        assert "one class" in fig.axes[0].get_title()
    finally:
        plt.close(fig)


def test_evaluation_bundle_contents_and_close():
    y, p, frame = applicants(2_000)
    before = set(plt.get_fignums())
    result = evaluation_bundle(y, p, frame, threshold=0.4)
    assert isinstance(result, EvaluationResult)
    assert result.metrics["auc"] == evaluate_scores(y, p, 0.4)["auc"]
    assert "fairness_age_band_min_approval_ratio" in result.metrics
    assert "fairness_personal_status_and_sex_auc_max" in result.metrics
    assert set(result.tables) == {
        "calibration",
        "score_distribution",
        "fairness_age_band",
        "fairness_personal_status_and_sex",
    }
    assert set(result.figures) == {
        "calibration.png",
        "roc.png",
        "score_distribution.png",
        "confusion_matrix.png",
    }
    assert all(isinstance(f, Figure) for f in result.figures.values())
    opened = {f.number for f in result.figures.values()}
    assert opened <= set(plt.get_fignums())

    result.close()
    assert result.figures == {}
    assert set(plt.get_fignums()) == before


def test_evaluation_bundle_as_context_manager_closes_figures():
    y, p, frame = applicants(200)
    before = set(plt.get_fignums())
    with evaluation_bundle(y, p, frame, threshold=0.5) as result:
        assert len(result.figures) == 4
    assert set(plt.get_fignums()) == before


def test_import_has_no_matplotlib_side_effect():
    code = "import sys, app.training.evaluate; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
