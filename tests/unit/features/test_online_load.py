"""The online loader's pure parts: Feast's rows, Feast's window, only the newest row kept."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from feast import Entity, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.types import Array, Bool, Float64, Int64, String
from feast.utils import _convert_arrow_to_proto

from app.features.online_load import (
    drop_superseded,
    incremental_start,
    latest_rows,
    view_columns,
    window,
    writers,
)
from app.features.online_rows import to_feast_rows

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def make_view(tmp_path, *, created=None, mapping=None, extra=(), ttl=timedelta(days=30)):
    entity = Entity(name="applicant", join_keys=["applicant_id"], value_type=ValueType.STRING)
    source = FileSource(
        path=str(tmp_path / "t.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column=created or "",
        field_mapping=mapping,
    )
    schema = [
        Field(name="applicant_id", dtype=String),
        Field(name="age", dtype=Int64),
        Field(name="income", dtype=Float64),
        Field(name="job", dtype=String),
        Field(name="phone", dtype=Bool),
        *extra,
    ]
    view = FeatureView(name="v", entities=[entity], schema=schema, source=source, ttl=ttl)
    return view, entity


def config(tmp_path, online):
    return RepoConfig(
        project="p",
        provider="local",
        registry=str(tmp_path / "registry.db"),
        online_store=online,
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=tmp_path,
    )


def batch(ids, times, created=None, **extra):
    n = len(ids)
    columns = {
        "applicant_id": pa.array(ids, pa.string()),
        "age": pa.array([30, None, 41, 0][:n] + [7] * (n - 4), pa.int64()),
        "income": pa.array([1.5, float("nan"), None, 0.0][:n] + [2.0] * (n - 4), pa.float64()),
        "job": pa.array(["a", None, "", "b"][:n] + ["c"] * (n - 4), pa.string()),
        "phone": pa.array([True, None, False, True][:n] + [True] * (n - 4), pa.bool_()),
        "event_timestamp": pa.array(times, TS),
        **extra,
    }
    if created is not None:
        columns["created"] = pa.array(created, TS)
    return pa.table(columns)


def columns_of(view, entity, tmp_path):
    return view_columns(view, config(tmp_path, {"type": "sqlite"}), [entity])


@pytest.mark.parametrize("created", [None, "created"])
def test_rows_are_exactly_feasts_own_conversion(tmp_path, created):
    view, entity = make_view(tmp_path, created=created)
    cols = columns_of(view, entity, tmp_path)
    times = [T0 + timedelta(seconds=s, microseconds=7) for s in range(4)]
    table = batch(["a", "b", "c", "d"], times, created=times if created else None)
    ours = to_feast_rows(table, view, cols)
    feasts = _convert_arrow_to_proto(table.to_batches()[0], view, cols.join_keys)
    assert ours == feasts
    # Nulls and NaN are empty values, an empty string is a value: as Feast has them.
    assert not ours[1][1]["age"].WhichOneof("val") and not ours[1][1]["income"].WhichOneof("val")
    assert ours[2][1]["job"].WhichOneof("val") == "string_val"
    assert ours[0][2] == datetime(2025, 1, 1, 0, 0, 0, 7)  # naive UTC, as Feast passes it


def test_types_without_a_fast_path_go_to_feasts_converter(tmp_path):
    view, entity = make_view(tmp_path, extra=[Field(name="scores", dtype=Array(Int64))])
    cols = columns_of(view, entity, tmp_path)
    scores = pa.array([[1, 2], [], None, [3]], pa.list_(pa.int64()))
    table = batch(["a", "b", "c", "d"], [T0] * 4, scores=scores)
    assert to_feast_rows(table, view, cols) == _convert_arrow_to_proto(
        table.to_batches()[0], view, cols.join_keys
    )


def test_columns_follow_the_sources_field_mapping(tmp_path):
    view, entity = make_view(tmp_path, mapping={"yrs": "age"})
    cols = columns_of(view, entity, tmp_path)
    assert "yrs" in cols.read and "age" not in cols.read
    assert cols.keys_read == ["applicant_id", "event_timestamp"]
    renamed = cols.rename(pa.table({"yrs": [1], "applicant_id": ["a"]}))
    assert renamed.column_names == ["age", "applicant_id"]


def test_window_includes_both_ends_as_feasts_file_store(tmp_path):
    view, entity = make_view(tmp_path)
    cols = columns_of(view, entity, tmp_path)
    times = [T0 - timedelta(microseconds=1), T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    table = pa.table({"event_timestamp": pa.array(times, TS), "i": [0, 1, 2, 3]})
    kept = pads.dataset(table).to_table(filter=window(cols, T0, T0 + timedelta(hours=1)))
    assert kept["i"].to_pylist() == [1, 2]


def test_only_each_entitys_newest_row_is_written(tmp_path):
    view, entity = make_view(tmp_path, created="created")
    cols = columns_of(view, entity, tmp_path)
    t = [T0, T0 + timedelta(days=1), T0, T0, T0 + timedelta(days=2)]
    created = [T0, T0, T0 + timedelta(hours=1), T0, T0]
    table = batch(["a", "a", "b", "b", "c"], t, created=created)
    latest = latest_rows(table.select(cols.keys_read), cols)
    assert sorted(latest["applicant_id"].to_pylist()) == ["a", "b"]
    # Rows of one entity may sit in different batches: each is judged alone.
    kept = [drop_superseded(table.slice(i, 1), latest, cols) for i in range(table.num_rows)]
    assert [k.num_rows for k in kept] == [0, 1, 1, 0, 1]
    whole = drop_superseded(table, latest, cols)
    assert sorted(whole["applicant_id"].to_pylist()) == ["a", "b", "c"]
    assert whole.schema == table.schema


def test_unique_entities_need_no_check(tmp_path):
    view, entity = make_view(tmp_path)
    cols = columns_of(view, entity, tmp_path)
    table = batch(["a", "b", "c"], [T0] * 3)
    latest = latest_rows(table.select(cols.keys_read), cols)
    assert latest.num_rows == 0
    assert drop_superseded(table, latest, cols) is table


def test_incremental_start_is_feasts(tmp_path):
    now = T0 + timedelta(days=400)
    view, _ = make_view(tmp_path, ttl=timedelta(days=30))
    assert incremental_start(view, now) == now - timedelta(days=30)
    view.materialization_intervals.append((T0, T0 + timedelta(days=3)))
    assert incremental_start(view, now) == T0 + timedelta(days=3)
    forever, _ = make_view(tmp_path, ttl=timedelta(0))
    assert incremental_start(forever, now) == now - timedelta(weeks=52)


def test_sqlite_has_one_writer_redis_several(tmp_path):
    assert writers(config(tmp_path, {"type": "sqlite"})) == 1
    assert writers(config(tmp_path, {"type": "redis", "connection_string": "h:1"})) == 2
