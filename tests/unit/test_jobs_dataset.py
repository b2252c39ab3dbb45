"""`python -m jobs.dataset`: infer drafts a spec that checks, check reports and exits 0 / 1 / 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from app.dataset import load_dataset
from app.dataset.infer import InferError
from app.errors import DatasetSpecError, SourceError
from app.runtime import run_job
from jobs.dataset import main
from tests.utils import ROOT
from tests.utils import run_job as run_module

GMSC = ROOT / "datasets" / "gmsc"
GERMAN = ROOT / "datasets" / "german_credit"


def exit_code(argv: list[str]) -> int:
    """The job's exit status as `python -m jobs.dataset` would end with it."""
    with pytest.raises(SystemExit) as ended:
        run_job(lambda: main(argv))
    return int(ended.value.code or 0)


@pytest.mark.parametrize("directory", [GMSC, GERMAN], ids=lambda p: p.name)
def test_the_shipped_datasets_check_clean(directory, capsys):
    assert main(["check", str(directory), "--max-rejected", "0"]) == 0
    out = capsys.readouterr().out
    dataset = load_dataset(directory)
    for table in dataset.tables:
        assert f"  {table} " in out
    assert "rejected       0" in out and "check passed" in out
    assert f"entity: {dataset.spec.entity.name}, key {dataset.entity_key}" in out
    for feature in dataset.derived_names:
        assert f"    {feature} = " in out


def test_check_prints_the_request_schema(capsys):
    main(["check", str(GMSC)])
    out = capsys.readouterr().out
    assert "request: no request fields: the body is just the entity key (borrower_id)" in out
    assert "label: is_default (from 'SeriousDlqin2yrs'): 1 -> 1, 0 -> 0" in out
    assert "monthly_debt = debt_ratio * monthly_income   (missing in 19.5% of rows)" in out
    main(["check", str(GERMAN)])
    out = capsys.readouterr().out
    assert "request fields (4, the body's application):" in out
    assert "    duration_in_month " in out and "int  [1, 120]" in out
    assert "category  one of 'car (new)', 'car (used)'" in out
    assert "kept out of the model (protected or excluded):" in out


@pytest.fixture
def bad_rows(tmp_path) -> Path:
    """GMSC's file with bad rows: 40 of 3,000 (1.3%) in borrower_profile, 10 elsewhere."""
    frame = pd.read_csv(GMSC / "gmsc.csv").astype(object)
    frame.loc[:19, "age"] = 150
    frame.loc[20:39, "age"] = "old"
    frame.loc[40:49, "SeriousDlqin2yrs"] = 2
    frame.loc[50:59, "NumberOfOpenCreditLinesAndLoans"] = 2.5
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def test_rejected_rows_are_counted_with_their_reasons(bad_rows, capsys):
    assert main(["check", str(GMSC), "--data", str(bad_rows)]) == 1
    captured = capsys.readouterr()
    assert "borrower_profile             features read     3,000  accepted     2,960  " in (
        captured.out
    )
    assert "20 x age outside [18, 110]  (e.g. 150)" in captured.out
    assert "20 x age is not a number  (e.g. 'old')" in captured.out
    assert "10 x SeriousDlqin2yrs is neither 1 (1) nor 0 (0)  (e.g. 2)" in captured.out
    assert "10 x NumberOfOpenCreditLinesAndLoans is not an integer  (e.g. 2.5)" in captured.out
    assert captured.err == (
        "check failed: table borrower_profile rejects 40 of 3,000 rows (1.3%, more than "
        "--max-rejected 1.0%)\n"
    )
    # Under the threshold the same rows are reported but pass.
    assert main(["check", str(GMSC), "--data", str(bad_rows), "--max-rejected", "0.05"]) == 0


def test_a_bad_spec_exits_2_naming_file_and_path(tmp_path):
    broken = tmp_path / "gmsc"
    shutil.copytree(GMSC, broken, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    spec = broken / "dataset.yaml"
    spec.write_text(spec.read_text().replace("range: [18, 110]", "range: [110, 18]"))
    result = run_module("jobs.dataset", "check", str(broken), env={})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {spec}: 1 problem in the dataset spec:")
    assert "columns.age: `range` low 110 is above high 18" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_or_unreadable_data_exits_2(tmp_path):
    assert exit_code(["check", str(GMSC), "--data", str(tmp_path / "none.csv")]) == 2
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("not parquet")
    with pytest.raises(SourceError, match=r"cannot read .*garbage\.parquet"):
        main(["check", str(GMSC), "--data", str(garbage)])
    narrow = tmp_path / "narrow.csv"
    pd.read_csv(GMSC / "gmsc.csv").drop(columns=["DebtRatio"]).to_csv(narrow, index=False)
    with pytest.raises(SourceError, match="lacks columns: DebtRatio"):
        main(["check", str(GMSC), "--data", str(narrow)])
    with pytest.raises(DatasetSpecError, match="dataset spec not found"):
        main(["check", str(tmp_path / "nowhere")])


def test_check_without_a_directory_checks_the_configured_dataset(monkeypatch, capsys):
    monkeypatch.setenv("CREDIT_DATASET", str(GMSC))
    assert main(["check"]) == 0
    assert "gmsc v1 is valid" in capsys.readouterr().out


def test_infer_drafts_a_spec_that_checks(tmp_path, capsys):
    out = tmp_path / "my_gmsc"
    argv = [
        "infer",
        str(GMSC / "gmsc.csv"),
        "--label",
        "SeriousDlqin2yrs",
        "--entity",
        "borrower_id",
        "--currency",
        "USD",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"drafted {out / 'dataset.yaml'}: 10 columns (8 int, 2 float)" in printed
    dataset = load_dataset(out)
    assert dataset.name == "my_gmsc"
    flat = yaml.safe_load((out / "dataset.yaml").read_text())["sources"]["flat_file"]
    # Relative to the spec, so the directory can move with its data.
    assert not Path(flat["path"]).is_absolute()
    assert (out / flat["path"]).resolve() == (GMSC / "gmsc.csv").resolve()
    assert main(["check", str(out), "--max-rejected", "0"]) == 0
    with pytest.raises(InferError, match="exists: pass --force"):
        main(argv)
    assert main([*argv, "--force"]) == 0


def test_infer_with_request_fields_from_a_parquet_file(tmp_path):
    data = tmp_path / "german.parquet"
    pd.read_csv(ROOT / "data" / "raw" / "german_credit.csv").to_parquet(data)
    out = tmp_path / "draft"
    argv = ["infer", str(data), "--label", "creditability", "--entity", "applicant_id"]
    assert main([*argv, "--request", "credit_amount", "purpose", "--out", str(out)]) == 0
    dataset = load_dataset(out)
    assert dataset.request_columns == ("credit_amount", "purpose")
    assert dataset.spec.sources.flat_file.path == "../german.parquet"
    assert main(["check", str(out), "--max-rejected", "0"]) == 0


def test_infer_errors_exit_2_in_one_line(tmp_path, capsys):
    argv = ["infer", str(GMSC / "gmsc.csv"), "--entity", "id", "--out", str(tmp_path / "d")]
    assert exit_code([*argv, "--label", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: label column 'nope' is not in the data (columns: ")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()
    assert exit_code([*argv, "--label", "age"]) == 2
    assert "label column 'age' needs exactly two values" in capsys.readouterr().err
