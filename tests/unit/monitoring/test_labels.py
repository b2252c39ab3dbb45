"""Labels files: reading, typing and refusing bad ones with a message that names the problem."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from app.errors import CreditRiskError
from app.monitoring.labels import LabelsError, load_labels


def test_csv_and_parquet_labels_load_the_same(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    # Leading zeros must survive: the log stores applicant IDs as text.
    csv.write_text("applicant_id,defaulted,extra\n007,1,x\n008,0,y\n009,True,z\n010,false,w\n")
    parquet = tmp_path / "labels.parquet"
    pd.DataFrame(
        {"applicant_id": ["007", "008", "009", "010"], "defaulted": [True, False, True, False]}
    ).to_parquet(parquet)

    from_csv, from_parquet = load_labels(csv, "applicant_id"), load_labels(parquet, "applicant_id")
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
    labels = load_labels(path, "applicant_id")
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
        load_labels(path, "applicant_id")
    assert str(path) in str(caught.value)
    # Jobs turn CreditRiskError into one clear line, so the CLI needs no special case.
    assert isinstance(caught.value, CreditRiskError)


def test_a_bad_value_in_parquet_is_reported_too(tmp_path: Path) -> None:
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"applicant_id": ["A1", "A2"], "defaulted": [0, 2]}).to_parquet(path)
    with pytest.raises(LabelsError, match=r"1 bad row\(s\), e\.g\. applicant_id 'A2': 2"):
        load_labels(path, "applicant_id")


@pytest.mark.parametrize("name", ["missing.csv", "labels.json", "broken.parquet"])
def test_unreadable_labels_files_raise_labels_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name != "missing.csv":
        path.write_text("not a table")
    with pytest.raises(LabelsError, match=name):
        load_labels(path, "applicant_id")
