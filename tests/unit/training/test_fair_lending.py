"""The fair-lending screen: a group breaches it only when its adverse impact ratio is below
the screen and Fisher's test says the gap is not chance; unscreened groupings never refuse."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from scipy.stats import fisher_exact

from app.config import load_settings
from app.training.fair_lending import Screen, breaches, checks, findings, record, screen_of
from app.training.fairness import fairness_report
from tests.utils.fairlending import screened_spec

SCREEN = Screen(ratio=0.8, alpha=0.05, groupings=("sex",))


def approvals(group_counts: dict[str, tuple[int, int]]) -> tuple[pd.Series, list[float]]:
    """Groups and PDs with `approved` of `n` per group approved at a 0.5 cut."""
    groups, scores = [], []
    for group, (approved, n) in group_counts.items():
        groups += [group] * n
        scores += [0.1] * approved + [0.9] * (n - approved)
    return pd.Series(groups), scores


def summary_of(counts: dict[str, tuple[int, int]], name: str = "sex") -> dict[str, pd.DataFrame]:
    groups, scores = approvals(counts)
    return {name: fairness_report(None, scores, groups, threshold=0.5)}


def test_a_large_significant_gap_breaches_and_names_the_group():
    summary = summary_of({"men": (160, 200), "women": (60, 200)})
    (finding,) = findings(summary, SCREEN)
    assert (finding.group, finding.n, finding.approvals) == ("women", 200, 60)
    assert finding.ratio == pytest.approx((60 / 200) / (160 / 200))
    expected_p = fisher_exact([[60, 140], [160, 40]]).pvalue
    assert finding.p_value == pytest.approx(expected_p, rel=1e-12)
    assert finding.breach
    assert checks(SCREEN, [finding]) == {"sex adverse impact ratio >= 0.8 (or p >= 0.05)": False}
    assert finding.text().startswith("sex 'women' adverse impact ratio 0.37 (60 of 200 approved")


def test_the_same_ratio_on_a_few_applicants_is_reported_not_a_breach():
    # 2 of 6 against 8 of 10: a ratio of 0.42, but six applicants prove nothing (p > 0.05).
    summary = summary_of({"men": (8, 10), "women": (2, 6)})
    (finding,) = findings(summary, SCREEN)
    assert finding.ratio == pytest.approx((2 / 6) / 0.8) and not finding.breach
    assert breaches([finding]) == []
    assert checks(SCREEN, [finding]) == {"sex adverse impact ratio >= 0.8 (or p >= 0.05)": True}
    assert "not significant" in finding.text()


def test_groups_at_or_above_the_screen_and_unscreened_groupings_give_no_finding():
    fair = summary_of({"men": (100, 100), "women": (80, 100)})  # exactly 0.80
    assert findings(fair, SCREEN) == []
    unscreened = summary_of({"old": (160, 200), "young": (20, 200)}, name="age_band")
    assert findings(unscreened, SCREEN) == []
    assert (
        findings(summary_of({"men": (160, 200), "women": (6, 200)}), Screen(0, 0.05, ("sex",)))
        == []
    )


def test_no_approvals_anywhere_is_not_read_as_equal_treatment():
    summary = summary_of({"men": (0, 50), "women": (0, 50)})
    assert findings(summary, SCREEN) == []  # the ratio is undefined, not 1.0
    assert summary["sex"]["approval_rate_ratio"].isna().all()


def test_the_record_is_json_with_every_table_and_the_outcome():
    summary = summary_of({"men": (160, 200), "women": (60, 200)})
    found = findings(summary, SCREEN)
    kept = json.loads(json.dumps(record(SCREEN, summary, found)))
    assert kept["passed"] is False and kept["screen"] == 0.8 and kept["screened"] == ["sex"]
    assert [row["group"] for row in kept["groupings"]["sex"]] == ["men", "women"]
    assert kept["groupings"]["sex"][0]["auc"] is None  # no labels: not a number, not NaN
    assert kept["findings"][0]["group"] == "women"


def test_the_shipped_spec_reports_its_groupings_and_an_aligned_copy_screens_sex(tmp_path):
    shipped = screen_of(load_settings(data_dir=tmp_path, _env_file=None))
    assert shipped == Screen(0.8, 0.05, ()) and not shipped.on
    aligned = load_settings(data_dir=tmp_path, dataset=screened_spec(tmp_path), _env_file=None)
    assert screen_of(aligned) == Screen(0.8, 0.05, ("personal_status_and_sex",))
