"""Feature rows as Feast's online stores take them, converted a column at a time.

`feast.utils._convert_arrow_to_proto` builds every value through a generic per-value path;
for the scalar types a credit model's features have, the same protos are made column by column
here, a few times faster (a test checks they are equal); anything else goes through Feast's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureView, ValueType
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.utils import _convert_arrow_to_proto

# Feast's scalar conversions (feast.type_map: proto field per value type) and the Arrow types
# that give exactly its Python values; other types take Feast's own, slower, converter.
SCALARS: dict[ValueType, tuple[Callable[[Any], ValueProto], Callable[[pa.DataType], bool]]] = {
    ValueType.INT64: (lambda v: ValueProto(int64_val=v), pa.types.is_integer),
    ValueType.INT32: (lambda v: ValueProto(int32_val=v), pa.types.is_integer),
    ValueType.DOUBLE: (lambda v: ValueProto(double_val=v), pa.types.is_floating),
    ValueType.FLOAT: (lambda v: ValueProto(float_val=v), pa.types.is_floating),
    ValueType.STRING: (lambda v: ValueProto(string_val=v), pa.types.is_string),
    ValueType.BOOL: (lambda v: ValueProto(bool_val=v), pa.types.is_boolean),
}


def _scalar_values(column: pa.ChunkedArray | pa.Array, value_type: ValueType) -> list | None:
    make, fits = SCALARS.get(value_type, (None, None))
    if make is None or not fits(column.type):
        return None
    empty = ValueProto()  # shared, as Feast shares one for an all-null column
    if pa.types.is_floating(column.type):
        # NaN is missing to Feast (pd.isnull) as much as null is.
        return [empty if v is None or v != v else make(v) for v in column.to_pylist()]
    return [empty if v is None else make(v) for v in column.to_pylist()]


def _naive_utc(column: pa.ChunkedArray | pa.Array) -> list:
    # Feast hands the store naive UTC datetimes (to_numpy drops the zone); the stores read
    # a naive time as UTC. Sub-microsecond digits go, as in its pd.Timestamp.to_pydatetime.
    return pc.cast(column, pa.timestamp("us"), safe=False).to_pylist()


def to_feast_rows(batch: pa.Table, view: FeatureView, columns: Any) -> list[tuple]:
    """The rows `online_write_batch` takes, equal to `feast.utils._convert_arrow_to_proto`'s:
    its scalar cases column by column here (a few times faster), anything else by it.
    `columns`: the view's online_load.ViewColumns (join keys, event and created times)."""
    typed = [(f.name, f.dtype.to_value_type()) for f in view.features]
    values = {
        n: _scalar_values(batch.column(n), t) for n, t in [*typed, *columns.join_keys.items()]
    }
    if None in values.values() or not pa.types.is_timestamp(batch[columns.timestamp].type):
        return _convert_arrow_to_proto(
            batch.combine_chunks().to_batches()[0], view, columns.join_keys
        )
    key_names = list(columns.join_keys)
    keys = [
        EntityKeyProto(join_keys=key_names, entity_values=list(vals))
        for vals in zip(*(values[k] for k in key_names), strict=True)
    ]
    names = [name for name, _ in typed]
    per_row = zip(*(values[n] for n in names), strict=True) if names else ([] for _ in keys)
    features = [dict(zip(names, vals, strict=True)) for vals in per_row]
    events = _naive_utc(batch.column(columns.timestamp))
    created = _naive_utc(batch.column(columns.created)) if columns.created else [None] * len(keys)
    return list(zip(keys, features, events, created, strict=True))
