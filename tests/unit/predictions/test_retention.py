"""Prediction-log retention: old days and set-aside segments deleted and each deletion recorded
at once, unreadable parts no obstacle, a retention below the floor refused, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from app.predictions.journal import JOURNAL_DIR, encode_records
from app.predictions.log import PredictionLog, compact_prediction_log, read_prediction_log
from app.predictions.retention import RECORD_FILE, RetentionError, apply_retention
from app.predictions.schema import schema_for
from tests.unit.predictions.test_log import ids, record
from tests.utils import ROOT, isolated_settings
from tests.utils.datasets import german

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


def write_log(directory, ages: dict[int, int], now: datetime = NOW) -> None:
    """`ages[a]` records logged `a` days before `now`, compacted into Parquet parts."""
    plog = PredictionLog(directory, schema=schema_for(german()))
    for age, n in ages.items():
        plog.append([record(age * 100 + i, now - timedelta(days=age)) for i in range(n)])
    plog.close()


def set_aside(directory, name: str, records: list[dict]) -> os.PathLike:
    """A closed segment the schema cannot hold, set aside by a real compaction."""
    journal = directory / JOURNAL_DIR
    journal.mkdir(parents=True, exist_ok=True)
    (journal / f"{name}.jsonl").write_bytes(encode_records(records))
    compact_prediction_log(directory, schema_for(german()))
    bad = journal / f"{name}.jsonl.bad"
    assert bad.exists()
    return bad


def unholdable(i: int, logged_at: datetime | None) -> dict:
    row = {**record(i), "credit_amount": "not a number"}
    if logged_at is None:
        del row["logged_at"]
    else:
        row["logged_at"] = logged_at
    return row


def recorded(directory) -> list[dict]:
    lines = (directory / RECORD_FILE).read_text().splitlines()
    return [json.loads(line) | {"time": None} for line in lines]


def test_retention_deletes_older_days_and_records_each_one(tmp_path):
    directory = tmp_path / "log"
    write_log(directory, {40: 3, 31: 2, 30: 4, 0: 1})
    dry = apply_retention(
        directory, 30, NOW, dry_run=True, min_days=30, schema=schema_for(german())
    )
    assert (
        read_prediction_log(directory, schema_for(german())).num_rows == 10
        and not (directory / RECORD_FILE).exists()
    )

    done = apply_retention(directory, 30, NOW, min_days=30, schema=schema_for(german()))
    assert done.partitions == dry.partitions == ["date=2026-05-21", "date=2026-05-30"]
    assert (done.rows, done.files, done.cutoff) == (dry.rows, dry.files, dry.cutoff)
    assert (done.rows, done.files, done.cutoff) == (5, 2, "2026-05-31")
    kept = read_prediction_log(directory, schema_for(german()))
    assert kept.num_rows == 5 and set(kept.column("date").to_pylist()) == {
        "2026-05-31",
        "2026-06-30",
    }
    step = {"time": None, "days": 30, "cutoff": "2026-05-31", "dry_run": False}
    empty = {"unreadable_files": 0, "bad_segments": [], "bad_rows": 0}
    assert recorded(directory) == [
        step | empty | {"partitions": ["date=2026-05-21"], "rows": 3, "files": 1},
        step | empty | {"partitions": ["date=2026-05-30"], "rows": 2, "files": 1},
    ]
    assert (
        apply_retention(directory, 30, NOW, min_days=30, schema=schema_for(german())).partitions
        == []
    )
    assert len(recorded(directory)) == 2


def test_a_retention_below_the_floor_is_refused_and_deletes_nothing(tmp_path):
    directory = tmp_path / "log"
    write_log(directory, {40: 3, 10: 2})
    floor = r"floor of 30 days \(CREDIT_PREDICTION_LOG_RETENTION_MIN_DAYS\)"
    with pytest.raises(RetentionError, match=floor):
        apply_retention(directory, 29, NOW, min_days=30, schema=schema_for(german()))
    with pytest.raises(RetentionError, match="--days must be >= 0"):
        apply_retention(directory, -1, NOW, min_days=0, schema=schema_for(german()))
    assert (
        read_prediction_log(directory, schema_for(german())).num_rows == 5
        and not (directory / RECORD_FILE).exists()
    )
    assert apply_retention(directory, 7, NOW, min_days=7, schema=schema_for(german())).rows == 5


def test_unreadable_parts_are_deleted_counted_and_every_day_recorded(tmp_path):
    directory = tmp_path / "log"
    write_log(directory, {40: 3, 31: 2, 0: 1})
    (directory / "date=2026-05-21" / "part-empty.parquet").touch()  # a disk full mid-write
    garbage = directory / "date=2026-05-25" / "part-garbage.parquet"
    garbage.parent.mkdir()
    garbage.write_bytes(b"not parquet at all")
    dry = apply_retention(
        directory, 30, NOW, dry_run=True, min_days=30, schema=schema_for(german())
    )
    assert len(list(directory.glob("date=*"))) == 4 and not (directory / RECORD_FILE).exists()

    done = apply_retention(directory, 30, NOW, min_days=30, schema=schema_for(german()))
    days = ["date=2026-05-21", "date=2026-05-25", "date=2026-05-30"]
    assert done.partitions == dry.partitions == days
    figures = (done.rows, done.files, done.unreadable_files)
    assert figures == (dry.rows, dry.files, dry.unreadable_files) == (5, 4, 2)
    assert [p.name for p in directory.glob("date=*")] == ["date=2026-06-30"]
    steps = [
        (r["partitions"], r["rows"], r["files"], r["unreadable_files"]) for r in recorded(directory)
    ]
    assert steps == [(days[:1], 3, 2, 1), (days[1:2], 0, 1, 1), (days[2:], 2, 1, 0)]
    assert "(2 unreadable)" in done.line()


def test_set_aside_segments_go_once_all_their_records_are_past_the_cutoff(tmp_path):
    directory = tmp_path / "log"
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=40), now - timedelta(days=1)
    by_stamp = set_aside(directory, "w1-000001", [unholdable(0, old)])
    mixed = set_aside(directory, "w2-000001", [record(1, old), unholdable(2, recent)])
    by_mtime = set_aside(directory, "w3-000001", [unholdable(3, None), record(4, old)])
    young = set_aside(directory, "w4-000001", [unholdable(5, None)])
    with open(by_mtime, "ab") as f:
        f.write(b'{"torn')  # a line without a readable logged_at: the file's age decides
    os.utime(by_mtime, (old.timestamp(), old.timestamp()))

    dry = apply_retention(
        directory, 30, now, dry_run=True, min_days=30, schema=schema_for(german())
    )
    assert all(p.exists() for p in (by_stamp, mixed, by_mtime, young))
    done = apply_retention(directory, 30, now, min_days=30, schema=schema_for(german()))
    assert done.bad_segments == dry.bad_segments == [by_stamp.name, by_mtime.name]
    assert done.bad_rows == dry.bad_rows == 4
    assert not by_stamp.exists() and not by_mtime.exists() and mixed.exists() and young.exists()
    assert [(r["bad_segments"], r["bad_rows"]) for r in recorded(directory)] == [
        ([by_stamp.name], 1),
        ([by_mtime.name], 3),
    ]
    assert "2 .bad journal segment(s) (4 records)" in done.line()


def test_a_deletion_that_cannot_be_recorded_stops_the_run_saying_so(tmp_path):
    directory = tmp_path / "log"
    write_log(directory, {40: 3, 35: 1, 0: 1})
    (directory / RECORD_FILE).mkdir()  # the record cannot be appended to
    with pytest.raises(RetentionError, match="date=2026-05-21 was deleted but could not be"):
        apply_retention(directory, 30, NOW, min_days=30, schema=schema_for(german()))
    assert sorted(p.name for p in directory.glob("date=*")) == [
        "date=2026-05-26",
        "date=2026-06-30",
    ]


def test_settings_refuse_a_retention_below_its_floor():
    # The floor is Reg B's 25 months by default: a year's retention is refused.
    with pytest.raises(ValidationError, match=r"prediction_log_retention_min_days \(761\)"):
        isolated_settings(prediction_log_retention_days=365)
    assert isolated_settings().prediction_log_retention_days == 761
    settings = isolated_settings(
        prediction_log_retention_days=10, prediction_log_retention_min_days=7
    )
    assert settings.prediction_log_retention_days == 10


def retention_job(tmp_path, directory, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")}
    environ |= {"CREDIT_DATA_DIR": str(tmp_path), "CREDIT_PREDICTION_LOG_DIR": str(directory)}
    command = [sys.executable, "-m", "jobs.retention", *args]
    return subprocess.run(
        command, cwd=ROOT, env=environ | env, capture_output=True, text=True, timeout=120
    )


def test_the_retention_job_prints_one_line_and_exits_cleanly(tmp_path):
    directory = tmp_path / "log"
    now = datetime.now(UTC)
    write_log(directory, {10: 1, 0: 1}, now)
    day = directory / f"date={now - timedelta(days=8):%Y-%m-%d}"
    day.mkdir()
    (day / "part-empty.parquet").touch()
    bad = set_aside(directory, "w1-000001", [unholdable(7, now - timedelta(days=9))])
    floor = {"CREDIT_PREDICTION_LOG_RETENTION_MIN_DAYS": "5"}

    dry = retention_job(tmp_path, directory, "--days", "5", "--dry-run", **floor)
    assert dry.returncode == 0, dry.stderr
    assert "would remove 2 day(s)" in dry.stdout and bad.exists() and day.exists()
    done = retention_job(tmp_path, directory, "--days", "5", **floor)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line == dry.stdout.strip().replace("would remove", "removed")
    assert "removed 2 day(s)" in line and "1 records in 2 files (1 unreadable)" in line
    assert "1 .bad journal segment(s) (1 records)" in line
    assert ids(directory) == ["r0"] and not bad.exists() and not day.exists()


def test_the_retention_job_refuses_a_retention_below_the_floor(tmp_path):
    directory = tmp_path / "log"
    now = datetime.now(UTC)
    write_log(directory, {10: 1, 0: 1}, now)
    for args, env, said in (
        # The default floor: Reg B's 25 months.
        (["--days", "700"], {}, "below the retention floor of 761 days"),
        (["--days", "-1"], {}, "--days must be >= 0"),
        ([], {"CREDIT_PREDICTION_LOG_RETENTION_DAYS": "5"}, "invalid settings"),
    ):
        refused = retention_job(tmp_path, directory, *args, **env)
        assert refused.returncode == 2 and said in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    assert sorted(ids(directory)) == ["r0", "r1000"]
    assert not (directory / RECORD_FILE).exists()
