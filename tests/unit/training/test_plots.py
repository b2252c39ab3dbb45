"""Evaluation figures: they draw the data, and importing them does not import matplotlib."""

from __future__ import annotations

import subprocess
import sys

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from app.training.metrics import calibration_table, evaluate_scores
from app.training.plots import plot_calibration, plot_confusion, plot_roc, plot_score_distribution
from tests.utils import ROOT
from tests.utils.training import applicants


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


def test_import_has_no_matplotlib_side_effect():
    code = "import sys, app.training.plots; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
