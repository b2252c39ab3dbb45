"""Feature rows written to Redis in Feast's own layout, encoded a column at a time.

Feast's Redis store keeps one hash per entity: its key is the serialized entity key and the
project, its fields the murmur3 hash of "view:feature" (each holding a serialized `Value`) and
"_ts:view" (a serialized `Timestamp`). Its `online_write_batch` builds all of that row by row:
a proto per value, a hash of every field name on every row. Here the field names are hashed
once per view and the values encoded once per distinct value (a credit table's columns are
mostly categories and small integers) or, for doubles, by NumPy. What lands is byte for byte
what Feast writes (tests compare both), with the same newer-wins check, so Feast reads it as
its own. Anything this does not cover goes through Feast's writer instead.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureView, RepoConfig, ValueType
from feast.infra.online_stores.helpers import _mmh3
from feast.infra.online_stores.redis import RedisOnlineStore, _versioned_fv_name
from google.protobuf.timestamp_pb2 import Timestamp

from app.features.online_rows import SCALARS

# `Value.double_val` is field 5, 64-bit: its tag byte, then the IEEE double little-endian.
_DOUBLE_TAG = (5 << 3) | 1
# Entity key values as feast.infra.key_encoding_utils serializes them (version 3).
_KEY_FORMATS = {ValueType.INT64: "<q", ValueType.INT32: "<i"}
_NULL = b""  # an empty Value: Feast's missing value


def covers(view: FeatureView, config: RepoConfig, batch: pa.Table, keys: dict) -> bool:
    """Whether this writer gives exactly Feast's bytes for the view's rows."""
    online = config.online_store
    if getattr(online, "type", None) != "redis" or str(online.redis_type.value) != "redis":
        return False
    if config.entity_key_serialization_version != 3:
        return False
    if any(t not in (ValueType.STRING, *_KEY_FORMATS) for t in keys.values()):
        return False
    for field in view.features:
        scalar = SCALARS.get(field.dtype.to_value_type())
        if scalar is None or not scalar[1](batch.schema.field(field.name).type):
            return False
    return True


def encode_values(column: pa.ChunkedArray | pa.Array, value_type: ValueType) -> list[bytes]:
    """Each value's serialized `Value`, as Feast's row conversion and `SerializeToString`."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_floating(array.type):
        # NaN is missing to Feast (pd.isnull) as much as null is.
        array = pc.if_else(pc.is_nan(array), pa.scalar(None, array.type), array)
    if value_type == ValueType.DOUBLE:
        packed = np.empty(len(array), dtype=[("tag", "u1"), ("value", "<f8")])
        packed["tag"] = _DOUBLE_TAG
        packed["value"] = array.fill_null(0).to_numpy(zero_copy_only=False)
        raw = packed.tobytes()
        out = [raw[i : i + 9] for i in range(0, len(raw), 9)]
        for i in np.flatnonzero(pc.is_null(array).to_numpy(zero_copy_only=False)).tolist():
            out[i] = _NULL
        return out
    # One proto per distinct value: categories and small counts repeat on every row.
    coded = pc.dictionary_encode(array)
    make = SCALARS[value_type][0]
    encoded = [make(v).SerializeToString() for v in coded.dictionary.to_pylist()]
    encoded.append(_NULL)
    indices = coded.indices.fill_null(len(encoded) - 1).to_numpy(zero_copy_only=False)
    return [encoded[i] for i in indices.tolist()]


def _key_values(column: pa.ChunkedArray, value_type: ValueType) -> list[bytes]:
    if column.null_count:
        raise ValueError(f"entity key column {column.type} has {column.null_count} nulls")
    if value_type == ValueType.STRING:
        type_tag = struct.pack("<I", ValueType.STRING.value)
        encoded = (v.encode("utf8") for v in column.to_pylist())
        return [type_tag + struct.pack("<I", len(b)) + b for b in encoded]
    fmt = _KEY_FORMATS[value_type]
    size = struct.calcsize(fmt)
    packed = np.empty(len(column), dtype=[("type", "<u4"), ("size", "<u4"), ("value", fmt)])
    packed["type"], packed["size"] = value_type.value, size
    packed["value"] = column.to_numpy()
    raw, step = packed.tobytes(), 8 + size
    return [raw[i : i + step] for i in range(0, len(raw), step)]


def redis_keys(batch: pa.Table, keys: dict[str, ValueType], project: str) -> list[bytes]:
    """Each row's hash key: `serialize_entity_key` (names sorted, then values) and the project,
    as feast.infra.online_stores.helpers._redis_key builds it."""
    names = sorted(keys)
    prefix = struct.pack("<I", len(names)) + b"".join(
        struct.pack("<II", ValueType.STRING.value, len(n.encode("utf8"))) + n.encode("utf8")
        for n in names
    )
    tail = project.encode("utf8")
    parts = [_key_values(batch.column(n), keys[n]) for n in names]
    if len(parts) == 1:
        return [prefix + p + tail for p in parts[0]]
    return [prefix + b"".join(p) + tail for p in zip(*parts, strict=True)]


def event_times(column: pa.ChunkedArray) -> tuple[list[bytes], list[int]]:
    """Each row's serialized `Timestamp` and its nanoseconds, at the microseconds Feast keeps."""
    micros = pc.cast(column, pa.timestamp("us"), safe=False).cast(pa.int64())
    nanos = (micros.to_numpy() * 1000).tolist()
    cache: dict[int, bytes] = {}
    encoded = []
    for n in nanos:
        value = cache.get(n)
        if value is None:
            seconds, rest = divmod(n, 1_000_000_000)
            value = cache[n] = Timestamp(seconds=seconds, nanos=rest).SerializeToString()
        encoded.append(value)
    return encoded, nanos


@dataclass(frozen=True)
class RedisRows:
    """A batch encoded for Redis: keys, per-row field/value lists, event times."""

    keys: list[bytes]
    fields: list[list[bytes]]
    times: list[bytes]
    nanos: list[int]
    ts_field: bytes


def encode_rows(
    batch: pa.Table, view: FeatureView, config: RepoConfig, keys: dict, timestamp: str
) -> RedisRows:
    name = _versioned_fv_name(view, config)
    names = [f.name for f in view.features]
    hashed = [_mmh3(f"{name}:{n}") for n in names]
    columns = [encode_values(batch.column(f.name), f.dtype.to_value_type()) for f in view.features]
    per_row = zip(*columns, strict=True) if columns else ([] for _ in range(batch.num_rows))
    fields = [[x for pair in zip(hashed, row, strict=True) for x in pair] for row in per_row]
    times, nanos = event_times(batch.column(timestamp))
    return RedisRows(
        redis_keys(batch, keys, config.project), fields, times, nanos, f"_ts:{name}".encode()
    )


# Lua scripts carry a slice of the batch per call: one command and one reply for hundreds of
# rows instead of one each (redis-py's per-command packing and parsing was most of the time),
# each call short enough (a few ms) not to hold up the server's other clients.
_SLICE = 500
_READ = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGET', key, ARGV[1]) end
return out
"""
_WRITE = """
local width, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local at = 3 + (i - 1) * width
  redis.call('HSET', key, unpack(ARGV, at, at + width - 1))
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
return #KEYS
"""


def _previous(client, keys: Sequence[bytes], ts_field: bytes) -> list[int]:
    """The stored event time of each key, in nanoseconds (0: none)."""
    read = client.register_script(_READ)
    out = []
    for start in range(0, len(keys), _SLICE):
        for value in read(keys=keys[start : start + _SLICE], args=[ts_field]):
            ts = Timestamp.FromString(value) if value else None
            out.append(ts.seconds * 1_000_000_000 + ts.nanos if ts else 0)
    return out


def write_rows(config: RepoConfig, rows: RedisRows) -> int:
    """Write the rows newer than what the store holds (Feast's check: a row no newer than the
    stored one, or than an earlier row of the batch, is skipped); the rows written."""
    online = config.online_store
    client = RedisOnlineStore()._get_client(online)
    try:
        skip = getattr(online, "skip_dedup", False)
        previous = [0] * len(rows.keys) if skip else _previous(client, rows.keys, rows.ts_field)
        newest: dict[bytes, int] = {}
        keys, args = [], []
        for key, fields, ts, new, stored in zip(
            rows.keys, rows.fields, rows.times, rows.nanos, previous, strict=True
        ):
            seen = max(stored, newest.get(key, 0))
            if not skip and seen and new <= seen:
                continue
            newest[key] = new
            keys.append(key)
            args.append((rows.ts_field, ts, *fields))
        write = client.register_script(_WRITE)
        width = 2 + len(rows.fields[0]) if rows.fields else 2
        head = [width, online.key_ttl_seconds or 0]
        for start in range(0, len(keys), _SLICE):
            flat = [x for row in args[start : start + _SLICE] for x in row]
            write(keys=keys[start : start + _SLICE], args=head + flat)
        return len(keys)
    finally:
        client.close()
