"""A decision record's digest: SHA-256 of its canonical form, written with the record, so a
record altered after it was written (a PD, a feature, a reason edited in the Parquet part) is
told apart from one that replays differently.

The digest covers every field the decision path writes; who asked (added after the decision,
and pseudonymisable later) and the partition column are left out. It proves the record is
unchanged since it was written, against a careless edit or a corrupt copy, not against
someone who can also rewrite the digest: keep the log on write-once storage for that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

DIGEST = "record_digest"
# Set after the decision (who asked), the digest itself, and the Parquet partition column.
UNSIGNED = frozenset({"caller", "caller_subject", "idempotency_key", DIGEST, "date"})


def _canonical(value: Any) -> Any:
    """One value as it reads back from the journal or a Parquet part alike."""
    if value is None:
        return None
    if not isinstance(value, str | bytes | datetime) and hasattr(value, "item"):
        value = value.item()  # numpy scalars
    if isinstance(value, datetime):
        # Microseconds since the epoch: the log's timestamp unit, whatever the zone object.
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A number as the log stores it: features are float64 whatever type arrived.
        return None if math.isnan(value) else float(value)
    return value


def record_digest(record: Mapping[str, Any]) -> str:
    """The digest of the record's signed fields that hold a value: a column the log gained
    since (null in an older record read back with the new schema) changes nothing."""
    values = {k: _canonical(v) for k, v in record.items() if k not in UNSIGNED}
    signed = {k: v for k, v in values.items() if v is not None}
    text = json.dumps(signed, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def signed(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with its digest set (the decision path calls it last)."""
    record[DIGEST] = record_digest(record)
    return record


def decision_context(threshold: float, routing: str | None, offers: Any) -> dict[str, Any]:
    """The record's fields replay needs besides the model and the features: the PD cut
    applied, the routing in force (JSON) and the counter-offer bounds (JSON; None: no offers
    were made)."""
    bounds = json.dumps(dataclasses.asdict(offers)) if offers is not None else None
    return {"threshold": threshold, "routing": routing, "offer_bounds": bounds}
