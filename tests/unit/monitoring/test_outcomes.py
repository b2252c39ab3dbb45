"""Outcome joins: labels go to answered decisions only, by request_id or by applicant."""

from __future__ import annotations

import pandas as pd
import pytest

from app.monitoring.labels import LabelsError
from app.monitoring.outcomes import join_outcomes
from tests.utils.monitoring import decision, log_frame


def test_request_id_join_ignores_shadow_scores() -> None:
    # The challenger's shadow score shares the champion's request_id (serving logs it so).
    rows = [
        decision("r1", "A1", "2024-01-02T10:00", 0.2),
        decision("r1", "A1", "2024-01-02T10:00", 0.9, variant="challenger", shadow=True),
        decision("r2", "A2", "2024-01-02T11:00", 0.4),
    ]
    labels = pd.DataFrame({"request_id": ["r1"], "applicant_id": ["A1"], "defaulted": [True]})
    joined = join_outcomes(log_frame(rows), labels, "applicant_id")
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
    joined = join_outcomes(log_frame(rows), labels, "applicant_id").set_index("request_id")
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
    joined = join_outcomes(log_frame(rows), labels, "applicant_id").set_index("request_id")
    assert joined.at["r1", "defaulted"] == 1 and pd.isna(joined.at["r2", "defaulted"])


def test_a_request_id_of_another_applicant_is_rejected() -> None:
    rows = [decision("r1", "A1", "2024-01-02", 0.2)]
    labels = pd.DataFrame({"request_id": ["r1"], "applicant_id": ["A2"], "defaulted": [0]})
    with pytest.raises(LabelsError, match=r"'r1': log 'A1', labels 'A2'"):
        join_outcomes(log_frame(rows), labels, "applicant_id")


def test_integer_ids_in_labels_match_the_text_ids_of_the_log() -> None:
    # A Parquet labels file often stores numeric IDs as integers; the log stores text.
    rows = [decision("101", "7", "2024-01-02", 0.2), decision("102", "8", "2024-01-03", 0.6)]
    labels = pd.DataFrame({"request_id": [102], "applicant_id": [8], "defaulted": [1]})
    joined = join_outcomes(log_frame(rows), labels, "applicant_id")
    assert pd.isna(joined["defaulted"].iloc[0]) and joined["defaulted"].iloc[1] == 1


def test_labels_given_as_a_frame_are_validated_by_the_join() -> None:
    rows = [decision("r1", "A1", "2024-01-02", 0.2)]
    with pytest.raises(LabelsError, match="duplicate applicant_id"):
        join_outcomes(
            log_frame(rows),
            pd.DataFrame({"applicant_id": ["A1", "A1"], "defaulted": [0, 1]}),
            "applicant_id",
        )
