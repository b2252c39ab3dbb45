"""The prediction log: batched Parquet parts, atomic, and failures that never lose records."""

from datetime import UTC, datetime

from app.serving.predlog import PredictionLog, log_schema, read_prediction_log


def record(i: int) -> dict:
    return {
        "request_id": f"r{i}",
        "logged_at": datetime.now(UTC),
        "applicant_id": f"A{i}",
        "variant": "champion",
        "shadow": False,
        "model_name": "credit_risk",
        "model_version": "1",
        "probability_of_default": 0.1,
        "decision": "approve",
        "reasons": "[]",
        "features_as_of": None,
        "credit_amount": 1000.0 + i,
        "purpose": "others",
    }


def test_records_are_written_in_parts_and_read_back(tmp_path):
    plog = PredictionLog(tmp_path / "log", flush_rows=3)
    assert not plog.append([record(0), record(1)])
    assert plog.append([record(2)])  # the caller is told to flush
    assert plog.flush() == 3 and plog.pending == 0
    plog.append([record(3)])
    assert plog.flush() == 1 and plog.flush() == 0
    table = read_prediction_log(tmp_path / "log")
    assert sorted(table.column("request_id").to_pylist()) == ["r0", "r1", "r2", "r3"]
    assert set(log_schema().names) <= set(table.schema.names)
    assert not list((tmp_path / "log").rglob(".*.tmp"))


def test_a_failed_write_keeps_the_records_for_the_next_flush(tmp_path):
    blocked = tmp_path / "log"
    blocked.write_text("a file where the directory should be")
    plog = PredictionLog(blocked, flush_rows=1)
    plog.append([record(0), record(1)])
    assert plog.flush() == 0
    assert plog.errors == 1 and plog.pending == 2 and "Error" in plog.last_error
    blocked.unlink()
    assert plog.flush() == 2 and plog.pending == 0
    assert read_prediction_log(blocked).num_rows == 2


def test_the_buffer_is_bounded_and_counts_what_it_drops(tmp_path):
    plog = PredictionLog(tmp_path / "log", flush_rows=100, max_pending=5)
    plog.append([record(i) for i in range(8)])
    assert plog.pending == 5 and plog.dropped == 3
    plog.flush()
    kept = read_prediction_log(tmp_path / "log").column("request_id").to_pylist()
    assert sorted(kept) == ["r3", "r4", "r5", "r6", "r7"]


def test_reading_a_missing_log_gives_an_empty_table(tmp_path):
    assert read_prediction_log(tmp_path / "none").num_rows == 0
