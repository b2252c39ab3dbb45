"""Score metrics of probability-of-default predictions: input checks, metrics and tables."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

# Convention throughout: label 1 = default, a "positive" is a predicted default (PD >= threshold),
# which the lender declines; PD < threshold is approved.

# Same clipping as scikit-learn's log_loss, so a PD of exactly 0 or 1 gives a large finite loss.
_EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _to_float_array(values: Any, name: str) -> np.ndarray:
    # to_numpy(na_value=...) lets nullable pandas dtypes (Int64, Float64) through as NaN, which
    # the checks below then reject with a clear message instead of a TypeError.
    if hasattr(values, "to_numpy"):
        array = values.to_numpy(dtype="float64", na_value=np.nan)
    else:
        array = np.asarray(values, dtype="float64")
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def validate_scores(pd_scores: Any) -> np.ndarray:
    """PDs as a non-empty float array in [0, 1]; else ValueError."""
    scores = _to_float_array(pd_scores, "pd_scores")
    if len(scores) == 0:
        raise ValueError("cannot evaluate zero rows")
    if not np.isfinite(scores).all():
        raise ValueError("pd_scores contains NaN or infinite values")
    if scores.min() < 0.0 or scores.max() > 1.0:
        raise ValueError("pd_scores must be probabilities in [0, 1]")
    return scores


def validate(y_true: Any, pd_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 ints and valid PDs of the same length; else ValueError."""
    y = _to_float_array(y_true, "y_true")
    scores = validate_scores(pd_scores)
    if len(y) != len(scores):
        raise ValueError(f"y_true has {len(y)} rows but pd_scores has {len(scores)}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must contain only 0 (repaid) and 1 (default)")
    return y.astype("int64"), scores


def check_threshold(threshold: float) -> float:
    """The decline threshold as a float in [0, 1]; else ValueError."""
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return threshold


def check_bins(bins: int) -> int:
    """A positive integer bin count; else ValueError."""
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    return int(bins)


def _ratio(numerator: float, denominator: float) -> float:
    # An undefined rate (e.g. precision when nobody is declined) is NaN, not 0: a 0 would read
    # as a real, terrible value on a dashboard.
    return float(numerator / denominator) if denominator else math.nan


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def has_both_classes(y: np.ndarray) -> bool:
    """Whether the labels hold both defaulters and non-defaulters (AUC, KS need both)."""
    return bool(y.min() != y.max())


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    # roc_auc_score raises on one class; NaN lets the caller decide (e.g. a tiny holdout).
    return float(roc_auc_score(y, scores)) if has_both_classes(y) else math.nan


def ks_statistic(y: np.ndarray, scores: np.ndarray) -> float:
    """Largest gap between the empirical score CDFs of defaulters and non-defaulters."""
    if not has_both_classes(y):
        return math.nan
    bad = np.sort(scores[y == 1])
    good = np.sort(scores[y == 0])
    # Both CDFs only change at observed scores, so evaluating there finds the supremum; side
    # "right" makes each CDF include ties at the point, as an ECDF (and scipy's ks_2samp) does.
    points = np.unique(scores)
    cdf_bad = np.searchsorted(bad, points, side="right") / len(bad)
    cdf_good = np.searchsorted(good, points, side="right") / len(good)
    return float(np.max(np.abs(cdf_bad - cdf_good)))


def evaluate_scores(y_true: Any, pd_scores: Any, threshold: float) -> dict[str, float]:
    """Discrimination, calibration and decision metrics of PD scores at a decline threshold.

    Applicants with PD >= threshold are declined (predicted default, the positive class).
    AUC, Gini and KS are NaN when y_true holds one class; other undefined rates (precision
    with no declines, default rate among approved with no approvals, ...) are NaN too.
    """
    y, scores = validate(y_true, pd_scores)
    threshold = check_threshold(threshold)

    auc = roc_auc(y, scores)
    clipped = np.clip(scores, _EPS, 1.0 - _EPS)
    log_loss = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1.0 - clipped))

    declined = scores >= threshold
    approved = ~declined
    tp = int(np.sum(declined & (y == 1)))
    fp = int(np.sum(declined & (y == 0)))
    tn = int(np.sum(approved & (y == 0)))
    fn = int(np.sum(approved & (y == 1)))
    n = len(y)

    return {
        "n": float(n),
        "default_rate": float(y.mean()),
        "auc": auc,
        "gini": 2.0 * auc - 1.0,
        "ks": ks_statistic(y, scores),
        "brier": float(np.mean((scores - y) ** 2)),
        "log_loss": float(log_loss),
        "approval_rate": float(approved.mean()),
        "default_rate_approved": _ratio(fn, tn + fn),
        "tp": float(tp),
        "fp": float(fp),
        "tn": float(tn),
        "fn": float(fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
    }


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def calibration_table(y_true: Any, pd_scores: Any, bins: int = 10) -> pd.DataFrame:
    """Mean predicted PD against observed default rate in quantile bins of the score.

    Columns: bin (1 = lowest PD), n, mean_pd, observed_rate. Ties can merge quantile edges,
    so heavily tied scores give fewer than `bins` rows.
    """
    y, scores = validate(y_true, pd_scores)
    bins = check_bins(bins)
    if scores.min() == scores.max():
        # qcut returns all-NaN codes when every edge coincides; one bin is the honest answer.
        codes = np.zeros(len(scores), dtype="int64")
    else:
        codes = pd.qcut(scores, q=bins, labels=False, duplicates="drop").astype("int64")
    frame = pd.DataFrame({"code": codes, "pd": scores, "y": y})
    table = (
        frame.groupby("code", sort=True)
        .agg(n=("y", "size"), mean_pd=("pd", "mean"), observed_rate=("y", "mean"))
        .reset_index(drop=True)
    )
    # Renumber 1..k: dropped duplicate edges would otherwise leave gaps in the bin numbers.
    table.insert(0, "bin", np.arange(1, len(table) + 1))
    return table


def score_distribution(pd_scores: Any, bins: int = 20) -> pd.DataFrame:
    """Histogram of PDs over `bins` equal-width bins on [0, 1] (the last bin includes 1.0).

    Fixed edges, unlike quantiles, make histograms comparable across models and over time.
    Columns: bin_lower, bin_upper, count, share.
    """
    scores = validate_scores(pd_scores)
    bins = check_bins(bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(scores, bins=edges)
    return pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "count": counts.astype("int64"),
            "share": counts / len(scores),
        }
    )
