"""Feast's online-store layout as the request path reads it: entity keys and stored values
decoded, each value's type checked against its view's declared dtype, so one damaged or
mistyped record is that applicant's problem (Unreadable), never the whole batch's."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from app.errors import FeatureStoreError


class Unreadable(ValueError):
    """A stored record that cannot be decoded, or holds a value of the wrong type."""


# One applicant's read: (feature -> value, event seconds of each view present), or why not.
Fetched = tuple[dict[str, Any], list[int]] | Unreadable


def decode_value(raw: bytes | None, kind: str | None = None) -> Any:
    if not raw:
        return None
    try:
        value = Value.FromString(raw)
    except DecodeError as exc:
        raise Unreadable(f"undecodable value: {exc}") from None
    stored = value.WhichOneof("val")
    if stored is None or stored == "null_val":
        return None
    if kind is not None and stored != kind:
        raise Unreadable(f"a {stored} where the view declares {kind}")
    return getattr(value, stored)


def decode_seconds(raw: bytes) -> int:
    try:
        return Timestamp.FromString(raw).seconds
    except DecodeError as exc:
        raise Unreadable(f"undecodable event time: {exc}") from None


def value_kind(dtype) -> str | None:
    """The `Value` field Feast stores a dtype in (ValueType INT64 -> "int64_val")."""
    try:
        return f"{dtype.to_value_type().name.lower()}_val"
    except (AttributeError, ValueError):
        return None


def entity_key(entity_id: str, version: int, join_key: str) -> bytes:
    """Feast's serialised key of one entity (the spec's entity key is its join key)."""
    key = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=entity_id)])
    return serialize_entity_key(key, entity_key_serialization_version=version)


def glob_escape(text: bytes) -> bytes:
    for char in b"\\*?[]":
        text = text.replace(bytes([char]), b"\\" + bytes([char]))
    return text


def applicant_of(serialized: bytes, version: int) -> str:
    from feast.infra.key_encoding_utils import deserialize_entity_key

    key = deserialize_entity_key(serialized, entity_key_serialization_version=version)
    return key.entity_values[0].string_val


def sqlite_seconds(event_ts: int | str | bytes) -> int:
    # Feast writes the naive-UTC event time through its sqlite3 adapter (local epoch seconds)
    # and reads it back with its converter; the same converter here gives the same instant.
    from feast.infra.online_stores.sqlite import convert_timestamp

    raw = event_ts if isinstance(event_ts, bytes) else str(event_ts).encode()
    try:
        return int(convert_timestamp(raw).replace(tzinfo=UTC).timestamp())
    except (ValueError, TypeError, OverflowError) as exc:
        raise Unreadable(f"unreadable event time {raw[:40]!r}: {exc}") from None


def verify_layout(reader, store, feature_service_name: str) -> None:
    """Read one stored applicant both ways and fail, naming the difference, if they disagree.

    Guards against a Feast upgrade changing how it lays out the online store: the reader
    would otherwise see every applicant as unknown, or read the wrong fields.
    """
    sentinel = reader.sample_id()
    if sentinel is None:
        return  # nothing materialized yet: nothing to compare, every applicant is unknown
    ours = reader.read([sentinel])
    refs = [f"{v.name}:{f}" for v in reader.views for f in v.features]
    theirs = store.get_online_features(
        features=refs, entity_rows=[{reader.dataset.entity_key: sentinel}]
    ).to_dict()
    differ = [f for f in reader.stored if theirs[f][0] != ours.columns[f][0]]
    if not ours.known[0] or differ:
        raise FeatureStoreError(
            f"the online store's layout is not what this version reads (Feast "
            f"{_feast_version()}): applicant {sentinel!r} "
            + ("not found" if not ours.known[0] else f"differs in {', '.join(differ)}")
        )


def _feast_version() -> str:
    from importlib.metadata import version

    return version("feast")
