"""Warehouse tables from the shipped file: stable ids, sane event times, the label."""

import pandas as pd
import pytest

from app.config import SHIPPED_DATA_PATH
from app.data.ingest_table import validate_frame
from app.data.warehouse import build_warehouse_tables, load_raw
from app.errors import SourceError
from tests.utils.datasets import german

TABLES = german().tables


def build(raw: pd.DataFrame, seed: int = 42) -> dict[str, pd.DataFrame]:
    return build_warehouse_tables(raw, german(), seed=seed)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return load_raw(SHIPPED_DATA_PATH, german())


def test_tables_match_their_specs(raw):
    tables = build(raw)
    assert set(tables) == set(TABLES)
    for name, df in tables.items():
        # The warehouse's own names: the label is the file's `creditability` column.
        assert list(df.columns) == TABLES[name].source_columns
        assert len(df) == 1000


def test_ids_and_times_are_stable_across_runs(raw):
    first = build(raw)
    second = build(raw)
    for name in TABLES:
        pd.testing.assert_frame_equal(first[name], second[name])
    apps = first["loan_applications"]
    assert apps.loc[0, "applicant_id"] == "A0000001"
    assert apps["applicant_id"].is_unique and apps["application_id"].is_unique


def test_profile_and_financials_predate_the_application(raw):
    tables = build(raw)
    apps = tables["loan_applications"].set_index("applicant_id")["application_timestamp"]
    for name in ("applicant_profile", "applicant_financials"):
        events = tables[name].set_index("applicant_id")["event_timestamp"]
        assert (events < apps.loc[events.index]).all()


def test_the_label_becomes_a_default_flag_at_validation(raw):
    apps = build(raw)["loan_applications"]
    valid, rejects = validate_frame(apps, TABLES["loan_applications"])
    assert rejects.empty
    assert valid["is_default"].sum() == (raw["creditability"] == "bad").sum() == 300
    bad = apps.assign(creditability=apps["creditability"].where(apps.index != 4, "meh"))
    _, rejects = validate_frame(bad, TABLES["loan_applications"])
    assert list(rejects["reason"]) == ["creditability='meh' is neither 'bad' (1) nor 'good' (0)"]


def test_missing_columns_are_named(tmp_path, raw):
    path = tmp_path / "broken.csv"
    raw.drop(columns=["purpose", "housing"]).to_csv(path, index=False)
    with pytest.raises(SourceError, match=r"lacks columns: (housing, purpose|purpose, housing)"):
        load_raw(path, german())


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SourceError, match="raw data file not found"):
        load_raw(tmp_path / "nope.csv", german())


def test_pipeline_rows_write_synthetic_tables_of_their_own(tmp_path):
    import pyarrow.parquet as pq

    from app.data.warehouse import prepare_local_tables, synthetic_source
    from tests.utils import isolated_settings

    settings = isolated_settings(data_dir=tmp_path)
    synthetic = synthetic_source(settings, 300)
    assert synthetic.local_source_dir == tmp_path / "source-synthetic-300"
    assert settings.local_source_dir == tmp_path / "source"  # the shipped tables stay apart
    assert "wrote 300 synthetic applicants" in prepare_local_tables(synthetic, 300)
    for spec in synthetic.load_dataset().tables.values():
        path = synthetic.local_source_dir / f"{spec.source_name}.parquet"
        assert pq.ParquetFile(path).metadata.num_rows == 300
    assert prepare_local_tables(synthetic, 300).startswith("using existing tables")


def test_pipeline_rows_refuse_a_snowflake_source_naming_the_seed_command(tmp_path):
    from app.data.warehouse import synthetic_source
    from tests.utils import isolated_settings

    settings = isolated_settings(data_dir=tmp_path, source="snowflake")
    with pytest.raises(SourceError, match=r"jobs\.seed --target snowflake --rows 500"):
        synthetic_source(settings, 500)
