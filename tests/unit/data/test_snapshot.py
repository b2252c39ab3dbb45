"""Offline snapshots: content-addressed, reproducible, and published all-or-nothing."""

import pandas as pd
import pytest

from app.config import SHIPPED_DATA_PATH
from app.data.snapshot import current_snapshot, load_snapshot, read_manifest, write_snapshot
from app.data.warehouse import build_warehouse_tables, load_raw
from app.errors import SnapshotError
from tests.utils.datasets import german, validated


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return validated(
        build_warehouse_tables(load_raw(SHIPPED_DATA_PATH, german()), german(), seed=42)
    )


def files_of(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_same_input_same_snapshot(tmp_path, tables):
    first_id, first = write_snapshot(tmp_path / "a", tables, {}, {"type": "test"}, german().tables)
    second_id, second = write_snapshot(
        tmp_path / "b", tables, {}, {"type": "test"}, german().tables
    )
    assert first_id == second_id
    assert files_of(first) == files_of(second)


def test_new_data_new_snapshot_made_current(tmp_path, tables):
    first_id, _ = write_snapshot(tmp_path, tables, {}, {}, german().tables)
    changed = dict(tables, loan_applications=tables["loan_applications"].iloc[:-1])
    second_id, second = write_snapshot(tmp_path, changed, {}, {}, german().tables)
    assert first_id != second_id
    assert current_snapshot(tmp_path) == second
    assert len(load_snapshot(tmp_path, "loan_applications")) == 999
    assert read_manifest(tmp_path)["tables"]["loan_applications"]["rows"] == 999


def test_failed_write_leaves_previous_snapshot_current(tmp_path, tables):
    first_id, first = write_snapshot(tmp_path, tables, {}, {}, german().tables)
    before = files_of(first)
    # A column of the wrong type makes encoding fail.
    broken = dict(tables, loan_applications=tables["loan_applications"].assign(credit_amount="x"))
    with pytest.raises(
        SnapshotError,
        match=r"table 'loan_applications' does not fit its schema: .*column credit_amount",
    ):
        write_snapshot(tmp_path, broken, {}, {}, german().tables)
    assert current_snapshot(tmp_path) == first
    assert files_of(first) == before
    leftovers = [p.name for p in (tmp_path / "snapshots").iterdir() if p.name != first_id]
    assert leftovers == []


class DiskFull:
    """A rejects table whose write fails after the Parquet files are already on disk."""

    def __len__(self) -> int:
        return 1

    def to_csv(self, *args, **kwargs):
        raise OSError("No space left on device")


def test_crash_mid_write_leaves_previous_snapshot_current(tmp_path, tables):
    first_id, first = write_snapshot(tmp_path, tables, {}, {}, german().tables)
    changed = dict(tables, loan_applications=tables["loan_applications"].iloc[:-1])
    with pytest.raises(OSError, match="No space left"):
        write_snapshot(tmp_path, changed, {"loan_applications": DiskFull()}, {}, german().tables)
    assert current_snapshot(tmp_path) == first
    assert len(load_snapshot(tmp_path, "loan_applications")) == 1000
    assert [p.name for p in (tmp_path / "snapshots").iterdir()] == [first_id]


def test_no_snapshot_yet_is_a_clear_error(tmp_path):
    with pytest.raises(SnapshotError, match=r"run `python -m jobs\.ingest` first"):
        load_snapshot(tmp_path, "loan_applications")
