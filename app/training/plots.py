"""Evaluation figures of PD scores: calibration, ROC, score distribution, confusion matrix.

matplotlib is imported inside the functions only, so importing this module never touches it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from app.domain import APPROVE, DECLINE
from app.training.metrics import check_bins, has_both_classes, roc_auc, validate

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _new_figure(figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    # Imported and configured here, not at module import, so importing this module never
    # touches matplotlib; Agg because training runs on headless Ray workers with no display.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def close_figure(fig: Figure) -> None:
    """Release a figure (pyplot keeps every figure alive until it is closed)."""
    import matplotlib.pyplot as plt

    plt.close(fig)


@contextmanager
def _drawing(figsize: tuple[float, float] = (6.0, 4.5)) -> Iterator[tuple[Figure, Axes]]:
    """A new figure to draw on, laid out when the block ends and closed if it raises."""
    fig, ax = _new_figure(figsize)
    try:
        yield fig, ax
        fig.tight_layout()
    except Exception:
        close_figure(fig)
        raise


def plot_calibration(table: pd.DataFrame) -> Figure:
    """Reliability plot of a calibration_table: observed default rate against mean PD."""
    with _drawing() as (fig, ax):
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
    return fig


def plot_score_distribution(y_true: Any, pd_scores: Any, bins: int = 20) -> Figure:
    """Overlaid PD histograms of defaulters and non-defaulters on fixed [0, 1] bins."""
    y, scores = validate(y_true, pd_scores)
    edges = np.linspace(0.0, 1.0, check_bins(bins) + 1)
    with _drawing() as (fig, ax):
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
    return fig


def plot_roc(y_true: Any, pd_scores: Any) -> Figure:
    """ROC curve with AUC and Gini in the title; a labelled empty plot for one class."""
    y, scores = validate(y_true, pd_scores)
    with _drawing(figsize=(5.0, 5.0)) as (fig, ax):
        ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", label="random")
        if has_both_classes(y):
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
    return fig


def plot_confusion(metrics: dict[str, float]) -> Figure:
    """2x2 confusion matrix from evaluate_scores' tp/fp/tn/fn (rows actual, columns decision)."""
    matrix = np.array(
        [[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]], dtype="float64"
    )
    with _drawing(figsize=(5.0, 4.5)) as (fig, ax):
        image = ax.imshow(matrix, cmap="Blues")
        fig.colorbar(image, ax=ax)
        total = matrix.sum()
        for (row, col), value in np.ndenumerate(matrix):
            share = value / total if total else math.nan
            # Dark cells get white text so the count stays legible.
            color = "white" if value > matrix.max() / 2 else "black"
            ax.text(col, row, f"{int(value)}\n{share:.1%}", ha="center", va="center", color=color)
        ax.set_xticks([0, 1], labels=[APPROVE, DECLINE])
        ax.set_yticks([0, 1], labels=["repaid", "default"])
        ax.set_xlabel("decision")
        ax.set_ylabel("actual")
        ax.set_title("Confusion matrix")
    return fig
