"""`jobs.dataset` against a warehouse table: the real connector reading fakesnow's server."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from app.config import load_settings
from app.data.snowflake import read_frame, seed_snowflake
from app.dataset import TableSpec, load_dataset
from app.errors import SourceError
from jobs.dataset import main
from tests.utils import ROOT, snowflake_overrides

pytestmark = pytest.mark.integration

GMSC_CSV = ROOT / "datasets" / "gmsc" / "gmsc.csv"


@pytest.fixture(scope="module")
def warehouse(fakesnow_service, tmp_path_factory) -> dict[str, str]:
    """GMSC's file as one warehouse table LANDING.GMSC_RAW; the settings as CREDIT_* variables."""
    overrides = snowflake_overrides(fakesnow_service.port, snowflake_schema="LANDING")
    settings = load_settings(data_dir=tmp_path_factory.mktemp("sf"), _env_file=None, **overrides)
    frame = pd.read_csv(GMSC_CSV)
    types = {c: pa.float64() if frame[c].dtype.kind == "f" else pa.int64() for c in frame}
    # A table of the file's columns as they are: seeding wants a key and time, which it
    # only uses to name columns.
    table = TableSpec(name="gmsc_raw", key="age", timestamp="age", columns=types)
    assert seed_snowflake({"gmsc_raw": frame}, {"gmsc_raw": table}, settings) == {
        "gmsc_raw": len(frame)
    }
    return {f"CREDIT_{k.upper()}": str(v) for k, v in overrides.items()}


@pytest.fixture
def env(warehouse, monkeypatch) -> None:
    for name, value in warehouse.items():
        monkeypatch.setenv(name, value)


def test_a_table_reads_whole_and_limited(warehouse, env):
    settings = load_settings(_env_file=None)
    frame = read_frame(settings, "gmsc_raw")
    assert len(frame) == 3000
    # Unquoted names come back upper-cased; names only quoting can hold keep their case.
    assert "MONTHLYINCOME" in frame.columns
    assert "NumberOfTime30-59DaysPastDueNotWorse" in frame.columns
    assert len(read_frame(settings, "GMSC_RAW", limit=10)) == 10
    with pytest.raises(SourceError, match=r"query failed on Snowflake .*NOPE"):
        read_frame(settings, "nope")


def test_infer_from_a_warehouse_table_then_check_it(env, tmp_path):
    out = tmp_path / "from_snowflake"
    argv = ["infer", "snowflake:gmsc_raw", "--label", "SeriousDlqin2yrs", "--entity", "id"]
    assert main([*argv, "--out", str(out)]) == 0
    dataset = load_dataset(out)
    # The rows read are the spec's flat file: check works without the warehouse.
    assert dataset.spec.sources.flat_file.path == "gmsc_raw.parquet"
    assert (out / "gmsc_raw.parquet").is_file()
    assert dataset.spec.label.source == "SERIOUSDLQIN2YRS"
    coded = {c.source for c in dataset.columns.values() if c.missing_codes}
    assert coded == {
        "NumberOfTime30-59DaysPastDueNotWorse",
        "NUMBEROFTIMES90DAYSLATE",
        "NumberOfTime60-89DaysPastDueNotWorse",
    }
    assert dataset.columns["monthlyincome"].nullable
    assert main(["check", str(out), "--max-rejected", "0"]) == 0
    assert main(["check", str(out), "--data", "snowflake:GMSC_RAW", "--max-rejected", "0"]) == 0


def test_check_reads_a_warehouse_table_in_any_case(env, capsys):
    # The shipped GMSC spec names the file's mixed-case columns; the table holds most of them
    # upper-cased.
    gmsc = str(ROOT / "datasets" / "gmsc")
    assert main(["check", gmsc, "--data", "snowflake:gmsc_raw", "--max-rejected", "0"]) == 0
    assert "data Snowflake table gmsc_raw: 3,000 rows" in capsys.readouterr().out
    with pytest.raises(SourceError, match="NOPE"):
        main(["check", gmsc, "--data", "snowflake:nope"])
