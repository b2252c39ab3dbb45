"""The model card page: every section a sign-off reads, values escaped, missing parts said."""

from __future__ import annotations

from app.training.model_card_html import render_html

CARD = {
    "model": "credit_risk",
    "version": "3",
    "run_id": "abc",
    "registered": "2026-12-07T10:00:00+00:00",
    "aliases": ["champion"],
    "data": {"dataset": "german_credit", "spec_hash": "f00d", "snapshot_id": "s1",
             "rows": {"train": "600", "validation": "200", "test": "200"}},
    "intended_use": "Probability of default <of> an applicant",
    "threshold": 1 / 6,
    "metrics": {
        "test": {"auc": 0.77, "gini": 0.54, "ks": 0.5, "brier": 0.17},
        "baseline_test": {"auc": 0.75},
        "cross_validation": {"cv_folds": 5.0, "cv_rows": 800.0, "cv_auc_mean": 0.78,
                             "cv_auc_std": 0.03, "cv_baseline_auc_mean": 0.76,
                             "cv_baseline_auc_std": 0.02},
    },
    "cross_validation_folds": [{"fold": 1, "xgboost_auc": 0.8, "baseline_auc": 0.77}],
    "calibration_by_grade": [],
    "fairness": {"screen": 0.8, "alpha": 0.05, "screened": ["sex"], "passed": False,
                 "findings": [], "groupings": {"sex": [{"group": "women", "n": 60,
                                                        "approval_rate_ratio": 0.5}]}},
    "stability_reference": {"score_cuts": [0.1, 0.2], "score_shares": [],
                            "characteristics": {"age": 11}},
    "monotone_constraints": {"age": -1},
    "reasons": [{"column": "age", "code": "R01", "subject": "age"}],
    "gates": {"test_auc >= 0.7": True, "sex adverse impact ratio >= 0.8": False},
    "gates_tag": "failed",
    "alias_history": [{"time": "t", "action": "champion", "alias": "champion", "version": "3",
                       "previous_version": None, "reason": "first", "user": "ml"}],
}  # fmt: skip


def test_the_page_has_every_section_with_its_figures():
    page = render_html(CARD)
    for heading in (
        "Intended use", "Data", "Performance", "Calibration by PD grade", "Fair lending",
        "Stability reference", "Monotone constraints", "Reason codes", "Gates", "Alias history",
    ):  # fmt: skip
        assert f"<h2>{heading}" in page, heading
    assert "Model card: credit_risk v3" in page and "f00d" in page
    assert "5-fold cross-validated AUC on 800 development rows: model <b>0.780 ± 0.030</b>" in page
    assert "baseline 0.760 ± 0.020" in page
    assert "risk falls" in page and "R01" in page and "FAILED" in page
    assert "&lt;of&gt;" in page and "<of>" not in page  # text is escaped
    # A part this version never recorded is said, not left blank.
    assert "Not recorded for this version." in page
    assert "<script" not in page and "http" not in page  # self-contained
