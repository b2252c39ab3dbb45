"""Live performance: per-period AUC/KS, deltas against the training baseline and the table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from app.monitoring.outcomes import join_outcomes
from app.monitoring.performance import format_table, performance_by_period
from tests.utils.monitoring import decision, known_case, log_frame


def test_auc_and_ks_match_a_hand_computed_case() -> None:
    table = performance_by_period(known_case(), period="W", min_labelled=6)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["period"] == "2024-01-01/2024-01-07"
    assert row["variant"] == "champion"
    assert (row["decisions"], row["labelled"]) == (6, 6)
    assert row["auc"] == pytest.approx(7 / 9)
    assert row["ks"] == pytest.approx(2 / 3)
    assert row["default_rate"] == pytest.approx(0.5)
    # Approved (PD < 0.5): 0.3, 0.2 and 0.1.
    assert row["approval_rate"] == pytest.approx(0.5)
    assert row["note"] == ""
    assert "auc_delta" not in table.columns


def test_periods_and_variants_are_separate_rows_in_time_order() -> None:
    rows = [
        decision("r1", "A1", "2024-02-01T10:00", 0.2),
        decision("r2", "A2", "2024-01-31T23:59", 0.7),
        decision("r3", "A3", "2024-02-01T11:00", 0.4, variant="challenger", version="2"),
        decision("r4", "A4", "2024-02-01T12:00", 0.1, version="3"),
    ]
    joined = join_outcomes(
        log_frame(rows), pd.DataFrame(columns=["applicant_id", "defaulted"]), "applicant_id"
    )
    daily = performance_by_period(joined, period="D", min_labelled=2)
    assert daily[["period", "variant"]].values.tolist() == [
        ["2024-01-31", "champion"],
        ["2024-02-01", "challenger"],
        ["2024-02-01", "champion"],
    ]
    assert daily["decisions"].tolist() == [1, 1, 2]
    assert daily["labelled"].tolist() == [0, 0, 0]
    assert daily["model_versions"].tolist() == ["1", "2", "1,3"]
    assert daily["approval_rate"].tolist() == [0.0, 1.0, 1.0]
    assert daily["note"].eq("no outcomes yet").all()
    monthly = performance_by_period(joined, period="M", min_labelled=2)
    assert monthly["period"].tolist() == ["2024-01", "2024-02", "2024-02"]


def test_a_one_class_period_has_nan_auc_and_ks_with_a_note() -> None:
    rows = [
        decision("w1a", "A1", "2024-01-02", 0.8),
        decision("w1b", "A2", "2024-01-03", 0.2),
        decision("w2a", "A3", "2024-01-09", 0.3),
        decision("w2b", "A4", "2024-01-10", 0.6),
        decision("w3a", "A5", "2024-01-16", 0.7),
        decision("w3b", "A6", "2024-01-17", 0.9),
    ]
    labels = pd.DataFrame(
        {
            "request_id": ["w1a", "w1b", "w2a", "w2b", "w3a", "w3b"],
            "applicant_id": ["A1", "A2", "A3", "A4", "A5", "A6"],
            "defaulted": [1, 0, 0, 0, 1, 1],
        }
    )
    table = performance_by_period(
        join_outcomes(log_frame(rows), labels, "applicant_id"), "W", min_labelled=2
    )
    first, second, third = table.iloc[0], table.iloc[1], table.iloc[2]
    assert first["auc"] == pytest.approx(1.0) and first["note"] == ""
    assert math.isnan(second["auc"]) and math.isnan(second["ks"])
    assert second["note"] == "auc/ks undefined: no defaults"
    # The rates that do not need both classes are still reported.
    assert second["default_rate"] == 0.0 and second["approval_rate"] == 0.5
    assert math.isnan(third["auc"]) and third["note"] == "auc/ks undefined: only defaults"


def test_too_few_labelled_rows_give_nan_with_a_note() -> None:
    table = performance_by_period(known_case(), period="W", min_labelled=7)
    row = table.iloc[0]
    assert math.isnan(row["auc"]) and math.isnan(row["ks"])
    assert row["note"] == "auc/ks need >= 7 labelled, have 6"


def test_deltas_are_live_minus_the_training_baseline() -> None:
    baseline = {"test_auc": 0.70, "test_ks": 0.50, "test_approval_rate": 0.65}
    row = performance_by_period(known_case(), "W", baseline=baseline, min_labelled=6).iloc[0]
    assert row["auc_delta"] == pytest.approx(7 / 9 - 0.70)
    assert row["ks_delta"] == pytest.approx(2 / 3 - 0.50)
    assert row["approval_rate_delta"] == pytest.approx(0.5 - 0.65)


def test_a_metric_missing_from_the_baseline_gives_a_nan_delta() -> None:
    row = performance_by_period(known_case(), "W", baseline={"test_auc": 0.7}, min_labelled=6)
    assert row["auc_delta"].iloc[0] == pytest.approx(7 / 9 - 0.7)
    assert math.isnan(row["ks_delta"].iloc[0])


@pytest.mark.parametrize("period", ["2W", "ME", "fortnight"])
def test_a_bad_period_is_rejected(period: str) -> None:
    with pytest.raises(ValueError, match="period"):
        performance_by_period(known_case(), period=period)


def test_format_table_aligns_columns_and_shows_nan_as_a_dash() -> None:
    frame = pd.DataFrame(
        {
            "period": ["2024-01", "2024-02"],
            "decisions": [12, 3],
            "auc": [0.81234, math.nan],
            "auc_delta": [0.01, -0.2],
        }
    )
    lines = format_table(frame).splitlines()
    assert lines[0].split() == ["period", "decisions", "auc", "auc_delta"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["2024-01", "12", "0.8123", "+0.0100"]
    assert lines[3].split() == ["2024-02", "3", "-", "-0.2000"]
    # Right-aligned numbers end in the same column on every line.
    end = lines[0].index("decisions") + len("decisions")
    assert lines[2][:end].endswith(" 12") and lines[3][:end].endswith("  3")
    assert format_table(frame.iloc[:0]).splitlines()[-1] == "(no rows)"
