"""Live performance: label validation, outcome joins, per-period AUC/KS, deltas and the table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from app.errors import CreditRiskError
from app.monitoring.performance import (
    LabelsError,
    format_table,
    join_outcomes,
    load_labels,
    performance_by_period,
)


def decision(
    request_id: str,
    applicant_id: str,
    logged_at: str,
    pd_score: float,
    variant: str = "champion",
    shadow: bool = False,
    version: str = "1",
) -> dict[str, Any]:
    """One prediction-log row; the decision follows a 0.5 threshold, as serving's would."""
    return {
        "request_id": request_id,
        "logged_at": pd.Timestamp(logged_at, tz="UTC"),
        "applicant_id": applicant_id,
        "variant": variant,
        "shadow": shadow,
        "model_name": "credit_risk",
        "model_version": version,
        "probability_of_default": pd_score,
        "decision": "decline" if pd_score >= 0.5 else "approve",
        "reasons": "[]",
        "features_as_of": None,
        "credit_amount": 1000.0,
    }


def log_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


# Hand-checked case: defaulters score 0.8, 0.6, 0.3 and non-defaulters 0.7, 0.2, 0.1.
# AUC: of the 9 (defaulter, non-defaulter) pairs the defaulter scores higher in 3 + 2 + 2 = 7.
# KS: at cut-off 0.3, TPR = 3/3 and FPR = 1/3 (only 0.7), the largest gap, 2/3.
KNOWN_BAD = (0.8, 0.6, 0.3)
KNOWN_GOOD = (0.7, 0.2, 0.1)


def known_case() -> pd.DataFrame:
    rows = [decision(f"b{i}", f"B{i}", "2024-01-02T12:00", s) for i, s in enumerate(KNOWN_BAD)] + [
        decision(f"g{i}", f"G{i}", "2024-01-03T12:00", s) for i, s in enumerate(KNOWN_GOOD)
    ]
    labels = pd.DataFrame(
        {
            "request_id": [r["request_id"] for r in rows],
            "applicant_id": [r["applicant_id"] for r in rows],
            "defaulted": [1, 1, 1, 0, 0, 0],
        }
    )
    return join_outcomes(log_frame(rows), labels)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


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
    joined = join_outcomes(log_frame(rows), pd.DataFrame(columns=["applicant_id", "defaulted"]))
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
    table = performance_by_period(join_outcomes(log_frame(rows), labels), "W", min_labelled=2)
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


# --------------------------------------------------------------------------------------------
# Joins
# --------------------------------------------------------------------------------------------


def test_request_id_join_ignores_shadow_scores() -> None:
    # The challenger's shadow score shares the champion's request_id (serving logs it so).
    rows = [
        decision("r1", "A1", "2024-01-02T10:00", 0.2),
        decision("r1", "A1", "2024-01-02T10:00", 0.9, variant="challenger", shadow=True),
        decision("r2", "A2", "2024-01-02T11:00", 0.4),
    ]
    labels = pd.DataFrame({"request_id": ["r1"], "applicant_id": ["A1"], "defaulted": [True]})
    joined = join_outcomes(log_frame(rows), labels)
    assert joined["request_id"].tolist() == ["r1", "r2"]
    assert joined["variant"].tolist() == ["champion", "champion"]
    assert joined["probability_of_default"].tolist() == [0.2, 0.4]
    assert joined["defaulted"].iloc[0] == 1 and pd.isna(joined["defaulted"].iloc[1])
    assert joined.attrs["unmatched_labels"] == 0
    assert {
        "logged_at",
        "variant",
        "model_version",
        "probability_of_default",
        "decision",
        "defaulted",
    } <= set(joined.columns)


def test_applicant_join_labels_only_the_latest_answered_decision() -> None:
    rows = [
        decision("r1", "A1", "2024-01-02", 0.2),
        decision("r2", "A1", "2024-01-05", 0.3),
        # Later than r2 but a shadow score: never the decision the applicant got.
        decision("r3", "A1", "2024-01-06", 0.9, variant="challenger", shadow=True),
        decision("r4", "A2", "2024-01-03", 0.4),
    ]
    labels = pd.DataFrame({"applicant_id": ["A1", "A9"], "defaulted": [1, 0]})
    joined = join_outcomes(log_frame(rows), labels).set_index("request_id")
    assert list(joined.index) == ["r1", "r4", "r2"]  # sorted by logged_at
    assert joined.at["r2", "defaulted"] == 1
    assert pd.isna(joined.at["r1", "defaulted"]) and pd.isna(joined.at["r4", "defaulted"])
    assert joined.attrs["unmatched_labels"] == 1  # A9 has no decision


def test_applicant_join_skips_decisions_made_after_the_outcome_was_observed() -> None:
    rows = [
        decision("r1", "A1", "2024-01-02", 0.2),
        decision("r2", "A1", "2024-03-01", 0.8),  # a reapplication after the default
    ]
    labels = pd.DataFrame(
        {"applicant_id": ["A1"], "defaulted": [1], "observed_at": ["2024-02-15T00:00:00Z"]}
    )
    joined = join_outcomes(log_frame(rows), labels).set_index("request_id")
    assert joined.at["r1", "defaulted"] == 1 and pd.isna(joined.at["r2", "defaulted"])


def test_a_request_id_of_another_applicant_is_rejected() -> None:
    rows = [decision("r1", "A1", "2024-01-02", 0.2)]
    labels = pd.DataFrame({"request_id": ["r1"], "applicant_id": ["A2"], "defaulted": [0]})
    with pytest.raises(LabelsError, match=r"'r1': log 'A1', labels 'A2'"):
        join_outcomes(log_frame(rows), labels)


# --------------------------------------------------------------------------------------------
# Labels files
# --------------------------------------------------------------------------------------------


def test_csv_and_parquet_labels_load_the_same(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    # Leading zeros must survive: the log stores applicant IDs as text.
    csv.write_text("applicant_id,defaulted,extra\n007,1,x\n008,0,y\n009,True,z\n010,false,w\n")
    parquet = tmp_path / "labels.parquet"
    pd.DataFrame(
        {"applicant_id": ["007", "008", "009", "010"], "defaulted": [True, False, True, False]}
    ).to_parquet(parquet)

    from_csv, from_parquet = load_labels(csv), load_labels(parquet)
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    assert from_csv.columns.tolist() == ["applicant_id", "defaulted"]  # extras dropped
    assert from_csv["applicant_id"].tolist() == ["007", "008", "009", "010"]
    assert from_csv["defaulted"].tolist() == [1, 0, 1, 0]
    assert str(from_csv["defaulted"].dtype) == "int64"


def test_optional_columns_are_kept_and_typed(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "request_id,applicant_id,defaulted,observed_at\n"
        "r1,A1,0,2024-02-01T00:00:00Z\nr2,A1,1,2024-03-01\n"
    )
    labels = load_labels(path)
    # The same applicant twice is fine when request_id is the key.
    assert labels["request_id"].tolist() == ["r1", "r2"]
    assert str(labels["observed_at"].dt.tz) == "UTC"
    assert labels["observed_at"].iloc[1] == pd.Timestamp("2024-03-01", tz="UTC")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("applicant_id,outcome\nA1,1\n", r"missing required column\(s\) defaulted"),
        (
            "applicant_id,defaulted\nA1,1\nA2,2\nA3,0\n",
            r"'defaulted' must be 0/1/True/False.*1 bad row\(s\), e\.g\. applicant_id 'A2': '2'",
        ),
        (
            "applicant_id,defaulted\nA1,1\nA2,\nA3,yes\n",
            r"2 bad row\(s\), e\.g\. applicant_id 'A2': missing, applicant_id 'A3': 'yes'",
        ),
        (
            "applicant_id,defaulted\nA1,1\nA2,0\nA1,0\nA2,1\nA2,1\n",
            r"2 duplicate applicant_id value\(s\).*'A2' \(3 rows\), 'A1' \(2 rows\)",
        ),
        (
            "request_id,applicant_id,defaulted\nr1,A1,1\nr1,A2,0\n",
            r"1 duplicate request_id value\(s\).*'r1' \(2 rows\)",
        ),
        ("applicant_id,defaulted\nA1,1\n,0\n", r"'applicant_id' has 1 missing value\(s\)"),
        (
            "applicant_id,defaulted,observed_at\nA1,1,soon\n",
            r"'observed_at' has 1 value\(s\) that are not timestamps, e\.g\. 'soon'",
        ),
    ],
    ids=[
        "missing-column",
        "value-2",
        "missing-and-text",
        "dup-applicant",
        "dup-request",
        "missing-id",
        "bad-time",
    ],
)
def test_bad_labels_files_raise_labels_error_naming_the_problem(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text(content)
    with pytest.raises(LabelsError, match=expected) as caught:
        load_labels(path)
    assert str(path) in str(caught.value)
    # Jobs turn CreditRiskError into one clear line, so the CLI needs no special case.
    assert isinstance(caught.value, CreditRiskError)


def test_a_bad_value_in_parquet_is_reported_too(tmp_path: Path) -> None:
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"applicant_id": ["A1", "A2"], "defaulted": [0, 2]}).to_parquet(path)
    with pytest.raises(LabelsError, match=r"1 bad row\(s\), e\.g\. applicant_id 'A2': 2"):
        load_labels(path)


@pytest.mark.parametrize("name", ["missing.csv", "labels.json", "broken.parquet"])
def test_unreadable_labels_files_raise_labels_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name != "missing.csv":
        path.write_text("not a table")
    with pytest.raises(LabelsError, match=name):
        load_labels(path)


def test_integer_ids_in_labels_match_the_text_ids_of_the_log() -> None:
    # A Parquet labels file often stores numeric IDs as integers; the log stores text.
    rows = [decision("101", "7", "2024-01-02", 0.2), decision("102", "8", "2024-01-03", 0.6)]
    labels = pd.DataFrame({"request_id": [102], "applicant_id": [8], "defaulted": [1]})
    joined = join_outcomes(log_frame(rows), labels)
    assert pd.isna(joined["defaulted"].iloc[0]) and joined["defaulted"].iloc[1] == 1


def test_labels_given_as_a_frame_are_validated_by_the_join() -> None:
    rows = [decision("r1", "A1", "2024-01-02", 0.2)]
    with pytest.raises(LabelsError, match="duplicate applicant_id"):
        join_outcomes(
            log_frame(rows), pd.DataFrame({"applicant_id": ["A1", "A1"], "defaulted": [0, 1]})
        )


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


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
