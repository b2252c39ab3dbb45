"""The counter-offer columns of the prediction log: kept with their types, null where no offer
was made, and a log written before they existed still reads (its rows with null offers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from app.predictions.log import PredictionLog, read_prediction_log
from app.predictions.schema import schema_for
from tests.utils.datasets import german

OFFER = {
    "counter_offer_credit_amount": 4500,
    "counter_offer_duration_in_month": 36,
    "counter_offer_probability_of_default": 0.12,
}
NONE = dict.fromkeys(OFFER)


def record(request_id: str, day: int, offer: dict) -> dict:
    return {
        "request_id": request_id,
        "logged_at": datetime(2026, 1, day, 12, tzinfo=UTC),
        "applicant_id": "A1",
        "variant": "champion",
        "shadow": False,
        "model_name": "credit_risk",
        "model_version": "1",
        "probability_of_default": 0.3,
        "decision": "decline",
        "reasons": "[]",
        "features_as_of": None,
        "credit_amount": 6000.0,
        **offer,
    }


def offers_by_id(directory) -> dict[str, dict]:
    table = read_prediction_log(directory, schema_for(german()))
    rows = table.select(["request_id", *OFFER]).to_pylist()
    return {row.pop("request_id"): row for row in rows}


def write_old_part(directory) -> None:
    """A Parquet part of a log written before the offer columns existed."""
    old = pa.schema([f for f in schema_for(german()) if f.name not in OFFER])
    part = directory / "date=2026-01-01" / "part-old.parquet"
    part.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([record("old", 1, {})], schema=old), part)


def test_offers_are_logged_with_their_types_in_the_journal_and_in_parquet(tmp_path):
    directory = tmp_path / "log"
    plog = PredictionLog(directory, schema=schema_for(german()))
    try:
        plog.append([record("offered", 2, OFFER), record("none", 2, NONE)])
        assert offers_by_id(directory) == {"offered": OFFER, "none": NONE}  # from the journal
    finally:
        plog.close()
    assert list(directory.glob("date=*/*.parquet"))
    table = read_prediction_log(directory, schema_for(german()))
    assert offers_by_id(directory) == {"offered": OFFER, "none": NONE}
    for name in OFFER:
        assert table.schema.field(name).type == schema_for(german()).field(name).type


def test_a_log_from_before_the_offer_columns_still_reads(tmp_path):
    directory = tmp_path / "log"
    write_old_part(directory)
    plog = PredictionLog(directory, schema=schema_for(german()))
    try:
        plog.append([record("new", 2, OFFER)])
        assert offers_by_id(directory) == {"old": NONE, "new": OFFER}
    finally:
        plog.close()


def test_old_and_new_parquet_parts_read_together(tmp_path):
    directory = tmp_path / "log"
    write_old_part(directory)
    plog = PredictionLog(directory, schema=schema_for(german()))
    try:
        plog.append([record("new", 2, OFFER)])
    finally:
        plog.close()
    assert offers_by_id(directory) == {"old": NONE, "new": OFFER}
