"""Ingest's table checks: repeated keys, bad values, key order, and parts equal to the whole."""

import pandas as pd
import pytest

from app.config import SHIPPED_DATA_PATH
from app.data.ingest_table import check_table, validate_frame
from app.data.validation import annotate_batch
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
def test_duplicates_bad_values_and_key_order(tables, name):
    spec = TABLES[name]
    key = spec.source_of(spec.unique_key[0])
    df = tables[name].astype(object)
    keys = df[key].tolist()
    df.loc[4, spec.source_of(spec.timestamp)] = "not a time"
    # Copies of rows (one of them bad anyway), and blank keys, which are rejected as null.
    df = pd.concat([df, df.iloc[[3, 3, 4, 8]]], ignore_index=True)
    df.loc[[1, 2], key] = None
    df = df.iloc[::-1].reset_index(drop=True)  # not in key order

    valid, rejects = arrow_checked(df, spec)
    expected_valid, expected_rejects = validate_frame(df, spec)
    pd.testing.assert_frame_equal(valid, expected_valid)  # streamed parts = the whole
    pd.testing.assert_frame_equal(rejects, expected_rejects)

    # No copy of a repeated key is trusted; the rest stay, typed and in key order.
    dropped = {keys[i] for i in (1, 2, 3, 4, 8)}
    assert valid[spec.unique_key[0]].tolist() == sorted(k for k in keys if k not in dropped)
    assert list(valid.columns) == list(spec.columns)
    reasons = rejects["reason"]
    assert reasons.str.startswith("duplicate key").sum() == 5  # 3 + 2 copies
    assert len(rejects) == 9  # and two blank keys, two bad times
    # Rejects keep the input's row order: its first rows are the copies, reversed.
    assert reasons.iloc[0].startswith("duplicate key") and f"={keys[8]}" in reasons.iloc[0]


def test_a_clean_table_has_no_rejects(tables):
    spec = TABLES["loan_applications"]
    valid, rejects = arrow_checked(tables[spec.name], spec)
    assert len(valid) == 1000 and rejects.empty and list(rejects.columns) == ["reason"]
    assert valid[spec.unique_key[0]].is_monotonic_increasing
