"""A record's digest is the same written and read back (ints stored as float64, timestamps
in any zone object, NaN as null, a column added to the log since), and changes with any value
the decision path wrote; who asked is not signed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd

from app.predictions.record import DIGEST, record_digest, signed

WRITTEN = {
    "request_id": "r1",
    "logged_at": datetime(2026, 12, 7, 13, 0, 0, 123456, tzinfo=UTC),
    "probability_of_default": 0.123456789012345,
    "decision": "decline",
    "age": 67,  # an int as the online store gave it
    "purpose": "car",
    "dependents": None,
    "counter_offer_credit_amount": 2000,
    "shadow": False,
}


def test_the_digest_survives_the_round_trip_through_the_log():
    record = signed(dict(WRITTEN))
    read_back = {
        **record,
        "logged_at": pd.Timestamp(WRITTEN["logged_at"]).tz_convert("Europe/Berlin").to_pydatetime(),
        "age": np.float64(67.0),
        "dependents": float("nan"),
        "counter_offer_credit_amount": np.int64(2000),
        "later_column": None,  # the log gained a column since
        "caller": "key-1",  # who asked: set after the decision, not signed
        "date": "2026-12-07",
    }
    assert record_digest(read_back) == record[DIGEST]


def test_any_value_of_the_decision_changes_the_digest():
    digest = record_digest(WRITTEN)
    for field, value in [
        ("probability_of_default", 0.123456789012346),
        ("decision", "approve"),
        ("age", 66),
        ("dependents", 0),
        ("logged_at", WRITTEN["logged_at"] + timedelta(microseconds=1)),
        ("shadow", True),
    ]:
        assert record_digest({**WRITTEN, field: value}) != digest, field
    assert record_digest({k: v for k, v in WRITTEN.items() if k != "purpose"}) != digest
    east = WRITTEN["logged_at"].astimezone(timezone(timedelta(hours=9)))
    assert record_digest({**WRITTEN, "logged_at": east}) == digest  # same instant
