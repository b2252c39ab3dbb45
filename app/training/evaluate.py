"""Pure evaluation of probability-of-default scores: metrics, tables, fairness and figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Convention throughout: label 1 = default, a "positive" is a predicted default (PD >= threshold),
# which the lender declines; PD < threshold is approved.

# Below this many rows a group AUC is mostly noise, so it is reported as NaN rather than logged.
MIN_GROUP_AUC_N = 10

AGE_BANDS: tuple[str, ...] = ("18-25", "26-35", "36-50", "51+")
# Left-closed edges so a fractional age belongs with its completed years (25.5 -> 18-25);
# below 18 is outside the credit-eligible population and becomes NaN.
_AGE_EDGES: tuple[float, ...] = (18, 26, 36, 51, math.inf)

# Rows whose group value is missing are reported as their own group rather than dropped, so a
# fairness table always accounts for every scored applicant.
MISSING_GROUP = "(missing)"

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


def _validate_scores(pd_scores: Any) -> np.ndarray:
    """PDs as a non-empty float array in [0, 1]; else ValueError."""
    scores = _to_float_array(pd_scores, "pd_scores")
    if len(scores) == 0:
        raise ValueError("cannot evaluate zero rows")
    if not np.isfinite(scores).all():
        raise ValueError("pd_scores contains NaN or infinite values")
    if scores.min() < 0.0 or scores.max() > 1.0:
        raise ValueError("pd_scores must be probabilities in [0, 1]")
    return scores


def _validate(y_true: Any, pd_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels as 0/1 ints and valid PDs of the same length; else ValueError."""
    y = _to_float_array(y_true, "y_true")
    scores = _validate_scores(pd_scores)
    if len(y) != len(scores):
        raise ValueError(f"y_true has {len(y)} rows but pd_scores has {len(scores)}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must contain only 0 (repaid) and 1 (default)")
    return y.astype("int64"), scores


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return threshold


def _check_bins(bins: int) -> int:
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


def _has_both_classes(y: np.ndarray) -> bool:
    return bool(y.min() != y.max())


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    # roc_auc_score raises on one class; NaN lets the caller decide (e.g. a tiny holdout).
    return float(roc_auc_score(y, scores)) if _has_both_classes(y) else math.nan


def ks_statistic(y: np.ndarray, scores: np.ndarray) -> float:
    """Largest gap between the empirical score CDFs of defaulters and non-defaulters."""
    if not _has_both_classes(y):
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
    y, scores = _validate(y_true, pd_scores)
    threshold = _check_threshold(threshold)

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
    y, scores = _validate(y_true, pd_scores)
    bins = _check_bins(bins)
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
    scores = _validate_scores(pd_scores)
    bins = _check_bins(bins)
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


# --------------------------------------------------------------------------------------------
# Fairness
# --------------------------------------------------------------------------------------------


def _group_labels(groups: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Per-row group labels as strings, and the groups present in report order."""
    series = pd.Series(groups).reset_index(drop=True)
    if isinstance(series.dtype, pd.CategoricalDtype):
        # Keep the category order (e.g. age bands youngest first) rather than sorting by name.
        order = [str(c) for c in series.cat.categories]
    else:
        order = sorted({str(v) for v in series.dropna()})
    labels = series.astype("object").where(series.notna(), MISSING_GROUP).map(str).to_numpy()
    present = set(labels)
    ordered = [g for g in order if g in present]
    if MISSING_GROUP in present and MISSING_GROUP not in ordered:
        ordered.append(MISSING_GROUP)
    return labels, ordered


def fairness_report(
    y_true: Any, pd_scores: Any, groups: pd.Series, threshold: float
) -> pd.DataFrame:
    """Per-group approval rate, default rate and AUC, with the four-fifths approval ratio.

    `groups` is aligned with the labels and scores by position, not by index. Columns:
    group, n, approval_rate, default_rate, auc (NaN for one class or fewer than
    MIN_GROUP_AUC_N rows), approval_rate_ratio (group approval rate / highest group approval
    rate; below 0.8 is the usual disparate-impact flag). Empty groups are omitted.
    """
    y, scores = _validate(y_true, pd_scores)
    threshold = _check_threshold(threshold)
    if len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} rows but y_true has {len(y)}")
    labels, order = _group_labels(groups)

    rows = []
    for group in order:
        mask = labels == group
        group_y, group_scores = y[mask], scores[mask]
        n = int(mask.sum())
        rows.append(
            {
                "group": group,
                "n": n,
                "approval_rate": float(np.mean(group_scores < threshold)),
                "default_rate": float(group_y.mean()),
                "auc": roc_auc(group_y, group_scores) if n >= MIN_GROUP_AUC_N else math.nan,
            }
        )
    report = pd.DataFrame(rows, columns=["group", "n", "approval_rate", "default_rate", "auc"])
    best = report["approval_rate"].max()
    # If no group has any approvals, the ratio is undefined rather than "perfectly equal".
    report["approval_rate_ratio"] = report["approval_rate"] / best if best > 0 else math.nan
    return report


def age_band(ages: pd.Series) -> pd.Series:
    """Ordered age bands 18-25, 26-35, 36-50, 51+; under 18 or missing ages become NaN."""
    numeric = pd.to_numeric(pd.Series(ages), errors="coerce")
    bands = pd.cut(numeric, bins=list(_AGE_EDGES), right=False, labels=list(AGE_BANDS))
    return bands.rename("age_band")


def _require_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"fairness evaluation needs columns: {', '.join(missing)}")


def fairness_summary(
    y_true: Any, pd_scores: Any, frame: pd.DataFrame, threshold: float
) -> dict[str, pd.DataFrame]:
    """fairness_report per grouping: age_band (from age_in_years) and personal_status_and_sex.

    `frame` holds the raw attributes of the same rows, in the same order, as the scores.
    """
    _require_columns(frame, ("age_in_years", "personal_status_and_sex"))
    groupings = {
        "age_band": age_band(frame["age_in_years"]),
        "personal_status_and_sex": frame["personal_status_and_sex"],
    }
    return {
        name: fairness_report(y_true, pd_scores, groups, threshold)
        for name, groups in groupings.items()
    }


def _flatten_fairness(summary: dict[str, pd.DataFrame]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for name, report in summary.items():
        values = {
            f"fairness_{name}_min_approval_ratio": report["approval_rate_ratio"].min(),
            f"fairness_{name}_auc_min": report["auc"].min(),
            f"fairness_{name}_auc_max": report["auc"].max(),
        }
        # pandas min/max skip NaN and give NaN only when nothing is defined; such keys are
        # omitted so the dict can go straight to mlflow.log_metrics.
        metrics.update({k: float(v) for k, v in values.items() if pd.notna(v)})
    return metrics


def fairness_metrics(
    y_true: Any, pd_scores: Any, frame: pd.DataFrame, threshold: float
) -> dict[str, float]:
    """Worst approval-rate ratio and min/max group AUC per grouping, as loggable floats.

    Keys: fairness_<grouping>_min_approval_ratio, fairness_<grouping>_auc_min and
    fairness_<grouping>_auc_max for each grouping of fairness_summary; undefined ones omitted.
    """
    return _flatten_fairness(fairness_summary(y_true, pd_scores, frame, threshold))


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _new_figure(figsize: tuple[float, float] = (6.0, 4.5)) -> tuple[Figure, Axes]:
    # Imported and configured here, not at module import, so importing this module never
    # touches matplotlib; Agg because training runs on headless Ray workers with no display.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def _close(fig: Figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def plot_calibration(table: pd.DataFrame) -> Figure:
    """Reliability plot of a calibration_table: observed default rate against mean PD."""
    fig, ax = _new_figure()
    try:
        upper = float(max(table["mean_pd"].max(), table["observed_rate"].max(), 0.0))
        # Zoom to the populated range (PDs are often all below 0.5) but keep the origin.
        limit = min(1.0, upper * 1.1) or 1.0
        ax.plot([0.0, limit], [0.0, limit], linestyle="--", color="grey", label="perfect")
        ax.plot(table["mean_pd"], table["observed_rate"], marker="o", label="model")
        ax.set_xlim(0.0, limit)
        ax.set_ylim(0.0, limit)
        ax.set_xlabel("mean predicted PD")
        ax.set_ylabel("observed default rate")
        ax.set_title(f"Calibration ({len(table)} quantile bins)")
        ax.legend(loc="upper left")
        fig.tight_layout()
    except Exception:
        _close(fig)
        raise
    return fig


def plot_score_distribution(y_true: Any, pd_scores: Any, bins: int = 20) -> Figure:
    """Overlaid PD histograms of defaulters and non-defaulters on fixed [0, 1] bins."""
    y, scores = _validate(y_true, pd_scores)
    edges = np.linspace(0.0, 1.0, _check_bins(bins) + 1)
    fig, ax = _new_figure()
    try:
        for label, name, color in ((0, "non-default", "tab:blue"), (1, "default", "tab:red")):
            subset = scores[y == label]
            if len(subset):
                # Densities, not counts: defaults are the minority, and raw counts would hide
                # the shape of their distribution under the non-defaulters'.
                ax.hist(
                    subset,
                    bins=edges,
                    density=True,
                    alpha=0.5,
                    color=color,
                    label=f"{name} (n={len(subset)})",
                )
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("predicted PD")
        ax.set_ylabel("density")
        ax.set_title("Score distribution by outcome")
        ax.legend(loc="upper right")
        fig.tight_layout()
    except Exception:
        _close(fig)
        raise
    return fig


def plot_roc(y_true: Any, pd_scores: Any) -> Figure:
    """ROC curve with AUC and Gini in the title; a labelled empty plot for one class."""
    y, scores = _validate(y_true, pd_scores)
    fig, ax = _new_figure(figsize=(5.0, 5.0))
    try:
        ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", label="random")
        if _has_both_classes(y):
            fpr, tpr, _ = roc_curve(y, scores)
            auc = roc_auc(y, scores)
            ax.plot(fpr, tpr, label="model")
            ax.set_title(f"ROC (AUC {auc:.3f}, Gini {2 * auc - 1:.3f})")
        else:
            # A figure is still returned so callers logging a fixed set of artifacts need no
            # special case; it says why there is no curve.
            ax.set_title("ROC undefined: only one class in y_true")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("false positive rate (good applicants declined)")
        ax.set_ylabel("true positive rate (defaulters declined)")
        ax.legend(loc="lower right")
        fig.tight_layout()
    except Exception:
        _close(fig)
        raise
    return fig


def plot_confusion(metrics: dict[str, float]) -> Figure:
    """2x2 confusion matrix from evaluate_scores' tp/fp/tn/fn (rows actual, columns decision)."""
    matrix = np.array(
        [[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]], dtype="float64"
    )
    fig, ax = _new_figure(figsize=(5.0, 4.5))
    try:
        image = ax.imshow(matrix, cmap="Blues")
        fig.colorbar(image, ax=ax)
        total = matrix.sum()
        for (row, col), value in np.ndenumerate(matrix):
            share = value / total if total else math.nan
            # Dark cells get white text so the count stays legible.
            color = "white" if value > matrix.max() / 2 else "black"
            ax.text(col, row, f"{int(value)}\n{share:.1%}", ha="center", va="center", color=color)
        ax.set_xticks([0, 1], labels=["approve", "decline"])
        ax.set_yticks([0, 1], labels=["repaid", "default"])
        ax.set_xlabel("decision")
        ax.set_ylabel("actual")
        ax.set_title("Confusion matrix")
        fig.tight_layout()
    except Exception:
        _close(fig)
        raise
    return fig


# --------------------------------------------------------------------------------------------
# Bundle
# --------------------------------------------------------------------------------------------


@dataclass
class EvaluationResult:
    """Everything one evaluation produces; figures stay open until close() is called."""

    metrics: dict[str, float]
    tables: dict[str, pd.DataFrame]
    figures: dict[str, Figure] = field(default_factory=dict)

    def close(self) -> None:
        """Close every figure (pyplot keeps them alive otherwise) and forget them."""
        for fig in self.figures.values():
            _close(fig)
        self.figures.clear()

    def __enter__(self) -> EvaluationResult:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def evaluation_bundle(
    y_true: Any, pd_scores: Any, frame: pd.DataFrame, threshold: float
) -> EvaluationResult:
    """Metrics, tables and figures for one scored holdout, ready for MLflow logging.

    Metrics are evaluate_scores plus fairness_metrics; tables are calibration,
    score_distribution, fairness_age_band and fairness_personal_status_and_sex; figures are
    keyed by artifact file name. Call close() (or use it as a context manager) when done.
    """
    y, scores = _validate(y_true, pd_scores)
    if len(frame) != len(y):
        raise ValueError(f"frame has {len(frame)} rows but y_true has {len(y)}")
    scored = evaluate_scores(y, scores, threshold)
    summary = fairness_summary(y, scores, frame, threshold)
    calibration = calibration_table(y, scores)
    tables = {
        "calibration": calibration,
        "score_distribution": score_distribution(scores),
        **{f"fairness_{name}": report for name, report in summary.items()},
    }
    result = EvaluationResult(metrics={**scored, **_flatten_fairness(summary)}, tables=tables)
    try:
        result.figures["calibration.png"] = plot_calibration(calibration)
        result.figures["roc.png"] = plot_roc(y, scores)
        result.figures["score_distribution.png"] = plot_score_distribution(y, scores)
        result.figures["confusion_matrix.png"] = plot_confusion(scored)
    except Exception:
        # Do not leak the figures already drawn when a later one fails.
        result.close()
        raise
    return result
