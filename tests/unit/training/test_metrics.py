"""PD score metrics: hand-computed metrics, calibration and score distribution tables."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import log_loss

from app.training.metrics import calibration_table, evaluate_scores, score_distribution
from tests.utils.training import applicants

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
