"""Warehouse tables from the shipped file: stable ids, sane event times, the label."""

import pandas as pd
import pytest

from app.config import SHIPPED_DATA_PATH
from app.data.validation import validate_frame
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
