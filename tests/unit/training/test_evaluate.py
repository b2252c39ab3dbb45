"""The evaluation bundle: metrics, tables and figures of one holdout, and closing them."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from app.training.evaluate import EvaluationResult, evaluation_bundle
from app.training.metrics import evaluate_scores
from tests.utils import ROOT
from tests.utils.datasets import german
from tests.utils.training import applicants

GROUPINGS = german().spec.fairness.groupings


def test_evaluation_bundle_contents_and_close():
    y, p, frame = applicants(2_000)
    before = set(plt.get_fignums())
    result = evaluation_bundle(y, p, frame, 0.4, GROUPINGS)
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
    with evaluation_bundle(y, p, frame, 0.5, GROUPINGS) as result:
        assert len(result.figures) == 4
    assert set(plt.get_fignums()) == before


def test_import_has_no_matplotlib_side_effect():
    code = "import sys, app.training.evaluate; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
