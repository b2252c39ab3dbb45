"""Fairness of PD decisions: approval rates, default rates and AUC per group of each of the
dataset spec's fairness groupings (e.g. age band), with the adverse impact ratio of approval
rates against the most favoured group, its significance and the standardised mean difference
of the PD."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact

from app.dataset.policy import Grouping
from app.training.metrics import check_threshold, roc_auc, validate, validate_scores

# Below this many rows a group AUC is mostly noise, so it is reported as NaN rather than logged.
MIN_GROUP_AUC_N = 10

# Rows whose group value is missing are reported as their own group rather than dropped, so a
# fairness table always accounts for every scored applicant.
MISSING_GROUP = "(missing)"


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
    y_true: Any | None,
    pd_scores: Any,
    groups: pd.Series,
    threshold: float,
    approved: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-group approval rate, default rate and AUC, with the adverse impact ratio.

    `groups` is aligned with the labels and scores by position, not by index. Without labels
    (`y_true` None: live decisions, outcomes unknown yet) default_rate and auc are NaN; live
    decisions also give `approved` as answered (else: PD below `threshold`). Columns:
    group, n, approvals, approval_rate, default_rate, auc (NaN for one class or fewer than
    MIN_GROUP_AUC_N rows), mean_pd, approval_rate_ratio (the adverse impact ratio: group
    approval rate / the most favoured group's; below 0.8 is the usual screen), p_value (Fisher's
    exact test of the group's approvals against the most favoured group's, two-sided: a low
    ratio on a few applicants is not evidence by itself) and pd_smd (the standardised mean
    difference of the PD from the most favoured group's, in pooled standard deviations).
    Empty groups are omitted.
    """
    if y_true is None:
        scores = validate_scores(pd_scores)
        y = np.full(len(scores), np.nan)
    else:
        y, scores = validate(y_true, pd_scores)
    threshold = check_threshold(threshold)
    if len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} rows but the scores have {len(y)}")
    labels, order = _group_labels(groups)
    approved = scores < threshold if approved is None else np.asarray(approved, dtype=bool)

    rows = []
    for group in order:
        mask = labels == group
        group_y, group_scores = y[mask], scores[mask]
        n = int(mask.sum())
        approvals = int(np.sum(approved[mask]))
        rows.append(
            {
                "group": group,
                "n": n,
                "approvals": approvals,
                "approval_rate": approvals / n,
                "default_rate": float(group_y.mean()),
                "auc": roc_auc(group_y, group_scores)
                if n >= MIN_GROUP_AUC_N and y_true is not None
                else math.nan,
                "mean_pd": float(group_scores.mean()),
                "_pd_var": float(group_scores.var()),
            }
        )
    return _against_most_favoured(pd.DataFrame(rows, columns=REPORT_COLUMNS))


REPORT_COLUMNS = [
    "group", "n", "approvals", "approval_rate", "default_rate", "auc", "mean_pd", "_pd_var"
]  # fmt: skip


def _against_most_favoured(report: pd.DataFrame) -> pd.DataFrame:
    """Each group against the one with the highest approval rate (the first of equals)."""
    report = report.copy()
    if report.empty:
        return report.drop(columns="_pd_var").assign(approval_rate_ratio=[], p_value=[], pd_smd=[])
    ref = report.loc[report["approval_rate"].idxmax()]
    best = ref["approval_rate"]
    # If no group has any approvals, the ratio is undefined rather than "perfectly equal".
    report["approval_rate_ratio"] = report["approval_rate"] / best if best > 0 else math.nan
    report["p_value"] = [
        float(
            fisher_exact(
                [[r.approvals, r.n - r.approvals], [ref["approvals"], ref["n"] - ref["approvals"]]]
            ).pvalue
        )
        for r in report.itertuples(index=False)
    ]
    pooled = np.sqrt((report["_pd_var"] + ref["_pd_var"]) / 2)
    difference = report["mean_pd"] - ref["mean_pd"]
    report["pd_smd"] = np.where(pooled > 0, difference / pooled.where(pooled > 0, 1.0), 0.0)
    return report.drop(columns="_pd_var")


def band_labels(edges: Sequence[float]) -> list[str]:
    """Names of left-closed bands: whole-number edges [18, 26, 51] give 18-25, 26-50, 51+;
    others give [a, b) and a+."""
    whole = all(float(e).is_integer() for e in edges)

    def text(value: float) -> str:
        return f"{value:g}"

    labels = []
    for low, high in zip(edges, [*edges[1:], None], strict=True):
        if high is None:
            labels.append(f"{text(low)}+")
        elif whole:
            labels.append(f"{text(low)}-{text(high - 1)}")
        else:
            labels.append(f"[{text(low)}, {text(high)})")
    return labels


def band(
    values: pd.Series, edges: Sequence[float], labels: Sequence[str] | None = None
) -> pd.Series:
    """Ordered bands from left-closed `edges` (a fractional age belongs with its completed
    years: 25.5 -> 18-25); values below the first edge, or missing, become NaN."""
    numeric = pd.to_numeric(pd.Series(values), errors="coerce")
    names = list(labels) if labels is not None else band_labels(edges)
    return pd.cut(numeric, bins=[*edges, math.inf], right=False, labels=names)


def groups_of(frame: pd.DataFrame, grouping: Grouping) -> pd.Series:
    """Each row's group under one grouping of the spec."""
    column = frame[grouping.column]
    if grouping.edges is None:
        return column
    return band(column, grouping.edges, grouping.labels)


def _require_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"fairness evaluation needs columns: {', '.join(missing)}")


def fairness_summary(
    y_true: Any,
    pd_scores: Any,
    frame: pd.DataFrame,
    threshold: float,
    groupings: Mapping[str, Grouping],
) -> dict[str, pd.DataFrame]:
    """fairness_report per grouping of the spec (e.g. age bands of an age column).

    `frame` holds the raw attributes of the same rows, in the same order, as the scores.
    """
    _require_columns(frame, list(dict.fromkeys(g.column for g in groupings.values())))
    return {
        name: fairness_report(y_true, pd_scores, groups_of(frame, grouping), threshold)
        for name, grouping in groupings.items()
    }


def flatten_fairness(summary: dict[str, pd.DataFrame]) -> dict[str, float]:
    """A fairness_summary as loggable floats (see fairness_metrics for the keys)."""
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
    y_true: Any,
    pd_scores: Any,
    frame: pd.DataFrame,
    threshold: float,
    groupings: Mapping[str, Grouping],
) -> dict[str, float]:
    """Worst approval-rate ratio and min/max group AUC per grouping, as loggable floats.

    Keys: fairness_<grouping>_min_approval_ratio, fairness_<grouping>_auc_min and
    fairness_<grouping>_auc_max for each grouping of fairness_summary; undefined ones omitted.
    """
    return flatten_fairness(fairness_summary(y_true, pd_scores, frame, threshold, groupings))
