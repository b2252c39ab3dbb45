"""One scored holdout evaluated for MLflow: metrics, tables and figures as one bundle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from app.dataset.policy import Grouping
from app.training.fairness import fairness_summary, flatten_fairness
from app.training.metrics import calibration_table, evaluate_scores, score_distribution, validate
from app.training.plots import (
    close_figure,
    plot_calibration,
    plot_confusion,
    plot_roc,
    plot_score_distribution,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class EvaluationResult:
    """Everything one evaluation produces; figures stay open until close() is called."""

    metrics: dict[str, float]
    tables: dict[str, pd.DataFrame]
    figures: dict[str, Figure] = field(default_factory=dict)

    def close(self) -> None:
        """Close every figure (pyplot keeps them alive otherwise) and forget them."""
        for fig in self.figures.values():
            close_figure(fig)
        self.figures.clear()

    def __enter__(self) -> EvaluationResult:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def evaluation_bundle(
    y_true: Any,
    pd_scores: Any,
    frame: pd.DataFrame,
    threshold: float,
    groupings: Mapping[str, Grouping],
) -> EvaluationResult:
    """Metrics, tables and figures for one scored holdout, ready for MLflow logging.

    Metrics are evaluate_scores plus fairness_metrics; tables are calibration,
    score_distribution and fairness_<grouping> per grouping of the spec; figures are
    keyed by artifact file name. Call close() (or use it as a context manager) when done.
    """
    y, scores = validate(y_true, pd_scores)
    if len(frame) != len(y):
        raise ValueError(f"frame has {len(frame)} rows but y_true has {len(y)}")
    scored = evaluate_scores(y, scores, threshold)
    summary = fairness_summary(y, scores, frame, threshold, groupings)
    calibration = calibration_table(y, scores)
    tables = {
        "calibration": calibration,
        "score_distribution": score_distribution(scores),
        **{f"fairness_{name}": report for name, report in summary.items()},
    }
    result = EvaluationResult(metrics={**scored, **flatten_fairness(summary)}, tables=tables)
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
