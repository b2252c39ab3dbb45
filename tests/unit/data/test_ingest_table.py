"""Ingest's Arrow checks give what the in-memory pandas validation gives, row for row."""

import pandas as pd
import pytest

from app.config import SHIPPED_DATA_PATH
from app.data.ingest_table import check_table
from app.data.validation import annotate_batch, validate_frame
from app.data.warehouse import build_warehouse_tables, load_raw
from tests.utils.datasets import german

TABLES = german().tables


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return build_warehouse_tables(load_raw(SHIPPED_DATA_PATH, german()), german(), seed=42)


def arrow_checked(df: pd.DataFrame, spec) -> tuple[pd.DataFrame, pd.DataFrame]:
    checked = check_table(annotate_batch(df, spec), spec)
    parts = list(checked.valid_parts(rows=300))
    valid = pd.concat([p.to_pandas() for p in parts], ignore_index=True)
    return valid, checked.rejects


@pytest.mark.parametrize("name", list(TABLES))
def test_duplicates_bad_values_and_order_match_the_pandas_validation(tables, name):
    spec = TABLES[name]
    df = tables[name].astype(object)
    df.loc[4, spec.source_of(spec.timestamp)] = "not a time"
    # Copies of rows (one of them bad anyway), and blank keys, which are rejected as null.
    df = pd.concat([df, df.iloc[[3, 3, 4, 8]]], ignore_index=True)
    df.loc[[1, 2], spec.source_of(spec.unique_key[0])] = None
    df = df.iloc[::-1].reset_index(drop=True)  # not in key order

    valid, rejects = arrow_checked(df, spec)
    expected_valid, expected_rejects = validate_frame(df, spec)

    pd.testing.assert_frame_equal(valid, expected_valid)
    pd.testing.assert_frame_equal(rejects, expected_rejects)
    assert rejects["reason"].str.startswith("duplicate key").sum() == 5  # 3 + 2 copies


def test_a_clean_table_has_no_rejects(tables):
    spec = TABLES["loan_applications"]
    valid, rejects = arrow_checked(tables[spec.name], spec)
    assert len(valid) == 1000 and rejects.empty and list(rejects.columns) == ["reason"]
    assert valid[spec.unique_key[0]].is_monotonic_increasing
