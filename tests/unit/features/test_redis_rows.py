"""The Redis encoder's bytes against Feast's own: keys, field names, values and times."""

from datetime import timedelta

import pyarrow as pa
import pytest
from feast import Field, ValueType
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.types import Array, Int64
from google.protobuf.timestamp_pb2 import Timestamp

from app.features import redis_rows
from app.features.online_rows import to_feast_rows
from tests.unit.features.test_online_load import T0, batch, columns_of, config, make_view

REDIS = {"type": "redis", "connection_string": "127.0.0.1:1"}


def feasts_hash(row, view, project):
    """What Feast's RedisOnlineStore.online_write_batch writes for one converted row."""
    key, values, when, _ = row
    ts = Timestamp()
    ts.FromDatetime(when.replace(tzinfo=T0.tzinfo))
    fields = {f"_ts:{view.name}".encode(): ts.SerializeToString()}
    for name, value in values.items():
        fields[_mmh3(f"{view.name}:{name}")] = value.SerializeToString()
    return _redis_key(project, key, 3), fields, ts.seconds * 10**9 + ts.nanos


def test_a_batch_encodes_to_feasts_keys_fields_and_values(tmp_path):
    view, entity = make_view(tmp_path)
    cols = columns_of(view, entity, tmp_path)
    times = [T0 + timedelta(seconds=s, microseconds=7) for s in range(6)]
    # Nulls, NaN, zero, False and the empty string: each as Feast encodes it.
    table = batch(["a", "b", "c", "d", "é", "f"], times)
    repo = config(tmp_path, REDIS)
    assert redis_rows.covers(view, repo, table, cols.join_keys)
    ours = redis_rows.encode_rows(table, view, repo, cols.join_keys, cols.timestamp)
    for i, row in enumerate(to_feast_rows(table, view, cols)):
        key, fields, nanos = feasts_hash(row, view, "p")
        assert ours.keys[i] == key
        mine = dict(zip(ours.fields[i][::2], ours.fields[i][1::2], strict=True))
        assert {ours.ts_field: ours.times[i], **mine} == fields
        assert ours.nanos[i] == nanos


@pytest.mark.parametrize(
    ("types", "values"),
    [
        ({"id": ValueType.INT64}, {"id": pa.array([1, -5, 2**40], pa.int64())}),
        ({"id": ValueType.INT32}, {"id": pa.array([1, -5, 7], pa.int32())}),
        (
            {"region": ValueType.STRING, "id": ValueType.INT64},
            {"region": pa.array(["n", "s", "ü"]), "id": pa.array([3, 4, 5], pa.int64())},
        ),
    ],
)
def test_entity_keys_are_feasts_serialization(types, values):
    table = pa.table(values)
    ours = redis_rows.redis_keys(table, types, "proj")
    for i, key in enumerate(ours):
        names = list(types)
        proto_values = [
            ValueProto(string_val=v)
            if types[n] == ValueType.STRING
            else ValueProto(int64_val=v)
            if types[n] == ValueType.INT64
            else ValueProto(int32_val=v)
            for n, v in ((n, table[n][i].as_py()) for n in names)
        ]
        expected = EntityKeyProto(join_keys=names, entity_values=proto_values)
        assert key == _redis_key("proj", expected, 3)


def test_doubles_encode_as_value_protos():
    column = pa.array([0.0, -0.0, 1e308, float("inf"), float("nan"), None, 2.5])
    expected = [
        b"" if v is None or v != v else ValueProto(double_val=v).SerializeToString()
        for v in column.to_pylist()
    ]
    assert redis_rows.encode_values(column, ValueType.DOUBLE) == expected


def test_what_it_does_not_cover_goes_to_feast(tmp_path):
    view, entity = make_view(tmp_path)
    cols = columns_of(view, entity, tmp_path)
    table = batch(["a", "b", "c", "d"], [T0] * 4)
    assert not redis_rows.covers(view, config(tmp_path, {"type": "sqlite"}), table, cols.join_keys)
    cluster = {**REDIS, "redis_type": "redis_cluster"}
    assert not redis_rows.covers(view, config(tmp_path, cluster), table, cols.join_keys)
    arrays, _ = make_view(tmp_path, extra=[Field(name="scores", dtype=Array(Int64))])
    table = table.append_column("scores", pa.array([[1]] * 4, pa.list_(pa.int64())))
    assert not redis_rows.covers(arrays, config(tmp_path, REDIS), table, cols.join_keys)
    # An entity key typed as bytes: Feast's serialization, not this one.
    assert not redis_rows.covers(
        view, config(tmp_path, REDIS), table, {"applicant_id": ValueType.BYTES}
    )


def test_a_null_entity_key_is_named():
    with pytest.raises(ValueError, match="nulls"):
        redis_rows.redis_keys(
            pa.table({"id": pa.array(["a", None])}), {"id": ValueType.STRING}, "p"
        )
