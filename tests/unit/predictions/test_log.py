"""The prediction log: journaled before the answer leaves, compacted to Parquet by any process,
nothing lost to a killed writer, a race or a failing disk (and every loss counted)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime

import pytest

import app.predictions.log as log_module
from app.predictions.journal import JOURNAL_DIR, encode_records
from app.predictions.log import PredictionLog, compact_prediction_log, read_prediction_log
from app.predictions.schema import schema_for
from tests.utils import ROOT, wait_for
from tests.utils.datasets import german


def record(i: int, logged_at: datetime | None = None) -> dict:
    return {
        "request_id": f"r{i}",
        "logged_at": logged_at or datetime.now(UTC),
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


def ids(directory) -> list[str]:
    return read_prediction_log(directory, schema_for(german())).column("request_id").to_pylist()


def segments(directory) -> list:
    return sorted((directory / JOURNAL_DIR).glob("*.jsonl"))


def test_a_batch_is_on_disk_when_append_returns_and_compacts_to_parquet(tmp_path):
    plog = PredictionLog(tmp_path / "log", flush_rows=3, schema=schema_for(german()))
    try:
        assert not plog.append([record(0), record(1)])
        # No flush yet: a reader already sees them, from the journal.
        assert sorted(ids(tmp_path / "log")) == ["r0", "r1"]
        assert plog.append([record(2)])  # a compaction is due (the log's thread is woken)
        plog.flush()  # whichever thread compacts, this returns once it is done
        assert plog.pending == 0 and plog.written == 3
        plog.append([record(3)])
        plog.flush()
        assert plog.pending == 0 and plog.written == 4 and plog.flush() == 0
    finally:
        plog.close()
    table = read_prediction_log(tmp_path / "log", schema_for(german()))
    assert sorted(table.column("request_id").to_pylist()) == ["r0", "r1", "r2", "r3"]
    assert set(schema_for(german()).names) <= set(table.schema.names)
    assert table.column("logged_at").type == schema_for(german()).field("logged_at").type
    assert not segments(tmp_path / "log") and list((tmp_path / "log").glob("date=*/*.parquet"))
    assert not list((tmp_path / "log").rglob(".*.tmp"))


@pytest.mark.parametrize("disk", ["working", "failing, then back"])
def test_concurrent_appends_and_flushes_lose_nothing_uncounted(tmp_path, disk):
    directory = tmp_path / "log"
    if disk != "working":
        directory.write_text("a file where the directory should be")
    # A small memory bound, so a failing disk makes drops race with flushes.
    plog = PredictionLog(directory, flush_rows=50, max_pending=300, schema=schema_for(german()))
    writers, batches, size = 4, 100, 16
    stop = threading.Event()

    def write(w: int) -> None:
        for b in range(batches):
            base = (w * batches + b) * size
            plog.append([record(base + k) for k in range(size)])
            if w == 0 and b == batches // 2 and disk != "working":
                directory.unlink()  # the disk comes back while the others keep writing

    def flush() -> None:
        while not stop.is_set():
            plog.flush()

    flusher = threading.Thread(target=flush)
    flusher.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    flusher.join()
    plog.close()
    logged = ids(directory)
    assert len(logged) == len(set(logged))
    assert len(logged) + plog.dropped == writers * batches * size
    assert plog.pending == 0 and plog.written == plog.journaled == len(logged)
    if disk == "working":
        assert plog.dropped == plog.errors == 0
    else:
        assert plog.dropped > 0 and plog.errors > 0


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from app.config import SHIPPED_DATASET
    from app.dataset import load_dataset
    from app.predictions.log import PredictionLog
    from app.predictions.schema import schema_for

    schema = schema_for(load_dataset(SHIPPED_DATASET))
    plog = PredictionLog(sys.argv[1], flush_rows=64, schema=schema)
    for b in range(100_000):
        plog.append([{"request_id": f"b{b}-{k}", "logged_at": datetime.now(UTC),
                      "shadow": False} for k in range(16)])
        print(b, flush=True)  # the "answer": sent only once append returned
        if b % 7 == 0:
            plog.flush()
    """
)


def test_a_killed_writer_loses_no_answered_batch_and_any_process_compacts_it(tmp_path):
    directory = tmp_path / "log"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    answered = []
    try:
        for line in writer.stdout:
            answered.append(int(line))
            if len(answered) == 300:
                break
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    assert len(answered) == 300, "the writer stopped early"
    wanted = {f"b{b}-{k}" for b in answered for k in range(16)}
    assert wanted <= set(ids(directory))  # read straight from the dead writer's journal
    assert segments(directory), "nothing was left to compact"
    # Another process (a replacement replica, a job) compacts what the dead one left.
    assert compact_prediction_log(directory, schema_for(german())) > 0
    assert not segments(directory)
    after = ids(directory)
    assert wanted <= set(after) and len(after) == len(set(after))


def test_a_crash_between_writing_the_part_and_removing_the_segment_duplicates_nothing(tmp_path):
    directory = tmp_path / "log"
    plog = PredictionLog(directory, flush_rows=1000, schema=schema_for(german()))
    plog.append([record(i) for i in range(5)])
    plog.close()  # compacts, so the segment exists no more
    plog = PredictionLog(directory, flush_rows=1000, schema=schema_for(german()))
    plog.append([record(i) for i in range(5, 8)])
    with plog._lock:
        os.close(plog._close_segment())  # closed, not compacted: as after a crash
    (segment,) = segments(directory)
    kept = segment.read_bytes()
    assert plog.flush() == 3
    segment.write_bytes(kept)  # the part is written but the segment "was never removed"
    assert sorted(ids(directory)) == [f"r{i}" for i in range(8)]
    assert (
        compact_prediction_log(directory, schema_for(german())) == 3
    )  # recompaction overwrites the same part
    assert sorted(ids(directory)) == [f"r{i}" for i in range(8)]


class CompactingAroundTheLock:
    """`fcntl` as log.py sees it: its flock runs a real compaction of the log just before and
    just after taking the real lock, the moments another replica or jobs.retention may run one
    while a writer opens a segment."""

    LOCK_EX, LOCK_NB = fcntl.LOCK_EX, fcntl.LOCK_NB

    def __init__(self, directory) -> None:
        self.directory = directory
        self.opened = 0

    def flock(self, fd: int, operation: int) -> None:
        compact_prediction_log(self.directory, schema_for(german()))
        fcntl.flock(fd, operation)
        compact_prediction_log(self.directory, schema_for(german()))
        self.opened += 1


def test_a_compaction_while_a_writer_opens_its_segment_loses_nothing(tmp_path, monkeypatch):
    directory = tmp_path / "log"
    seam = CompactingAroundTheLock(directory)
    monkeypatch.setattr(log_module, "fcntl", seam)
    plog = PredictionLog(directory, flush_rows=1000, fsync_seconds=60, schema=schema_for(german()))
    try:
        plog.append([record(i) for i in range(5)])
        plog.append([record(i) for i in range(5, 8)])
        assert seam.opened == 1
        assert sorted(ids(directory)) == [f"r{i}" for i in range(8)]
        assert plog.flush() == 8
    finally:
        plog.close()
    assert sorted(ids(directory)) == [f"r{i}" for i in range(8)]
    assert plog.errors == plog.dropped == plog.pending == 0
    assert not list((directory / JOURNAL_DIR).iterdir())


class LockTakenElsewhere:
    """`fcntl` as log.py sees it: the first segment's lock is already held through another
    open file description of it, so the real flock fails."""

    LOCK_EX, LOCK_NB = fcntl.LOCK_EX, fcntl.LOCK_NB

    def __init__(self) -> None:
        self.blocker: int | None = None

    def flock(self, fd: int, operation: int) -> None:
        if self.blocker is None:  # the first segment only: later ones lock as usual
            self.blocker = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
            fcntl.flock(self.blocker, fcntl.LOCK_EX)
        fcntl.flock(fd, operation)


def test_a_segment_whose_lock_cannot_be_taken_leaks_no_descriptor(tmp_path, monkeypatch):
    directory = tmp_path / "log"
    seam = LockTakenElsewhere()
    monkeypatch.setattr(log_module, "fcntl", seam)
    plog = PredictionLog(directory, fsync_seconds=60, schema=schema_for(german()))
    before = len(os.listdir("/proc/self/fd"))
    try:
        plog.append([record(0), record(1)])  # never raises into the request
        assert seam.blocker is not None
        assert len(os.listdir("/proc/self/fd")) == before + 1  # the blocker's alone
        assert plog.errors == 1 and plog.held == 2 and "BlockingIOError" in plog.last_error
        assert not list((directory / JOURNAL_DIR).iterdir())
        os.close(seam.blocker)
    finally:
        plog.close()  # a final attempt ignores the backoff
    assert sorted(ids(directory)) == ["r0", "r1"] and plog.dropped == 0


def test_compaction_removes_an_empty_segment_or_opening_file_only_once_old_and_unlocked(
    tmp_path,
):
    directory = tmp_path / "log"
    journal = directory / JOURNAL_DIR
    journal.mkdir(parents=True)
    empty = journal / "host-1-aaaaaaaa-000001.jsonl"  # a writer's, the disk full at once
    dead = journal / ".host-2-bbbbbbbb-000001.jsonl.opening"  # died before its rename
    paused = journal / ".host-3-cccccccc-000001.jsonl.opening"  # alive, before its rename
    crashed = journal / ".host-4-dddddddd-000001.jsonl.opening"  # a machine crash lost the rename
    for path in (empty, dead, paused):
        path.touch()
    crashed.write_bytes(encode_records([record(0)]))
    assert compact_prediction_log(directory, schema_for(german())) == 0
    assert all(p.exists() for p in (empty, dead, paused, crashed))  # young: left alone
    old = time.time() - 3600
    for path in (empty, dead, paused, crashed):
        os.utime(path, (old, old))
    holder = os.open(paused, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        assert (
            compact_prediction_log(directory, schema_for(german())) == 1
        )  # the crashed one's record, once
        assert sorted(p.name for p in journal.iterdir()) == [paused.name]
    finally:
        os.close(holder)
    assert ids(directory) == ["r0"]


def test_a_torn_last_line_is_skipped_and_counted(tmp_path):
    directory = tmp_path / "log"
    plog = PredictionLog(directory, schema=schema_for(german()))
    plog.append([record(0), record(1)])
    with plog._lock:
        os.close(plog._close_segment())
    (segment,) = segments(directory)
    with open(segment, "ab") as f:  # a machine crash mid-write: half a line
        f.write(encode_records([record(2)])[:40])
    assert sorted(ids(directory)) == ["r0", "r1"]
    assert plog.flush() == 2 and plog.torn == 1
    assert sorted(ids(directory)) == ["r0", "r1"]


def test_a_segment_the_schema_cannot_hold_is_set_aside_not_blocking_the_rest(tmp_path):
    directory = tmp_path / "log"
    bad = PredictionLog(directory, schema=schema_for(german()))
    bad.append([{**record(0), "credit_amount": "not a number"}])
    with bad._lock:
        os.close(bad._close_segment())
    good = PredictionLog(directory, schema=schema_for(german()))
    good.append([record(1)])
    assert ids(directory) == ["r1"]  # the reader skips what it cannot read
    good.close()
    assert ids(directory) == ["r1"] and good.torn == 1 and not segments(directory)
    assert len(list((directory / JOURNAL_DIR).glob("*.jsonl.bad"))) == 1


def test_a_failing_disk_never_raises_never_blocks_and_is_retried_with_backoff(tmp_path):
    blocked = tmp_path / "log"
    blocked.write_text("a file where the directory should be")
    plog = PredictionLog(blocked, flush_rows=1, fsync_seconds=60, schema=schema_for(german()))
    plog.append([record(0), record(1)])  # never raises into the request
    assert plog.errors == 1 and plog.held == 2 and "Error" in plog.last_error
    plog.append([record(2)])  # backing off: held without touching the disk again
    assert plog.errors == 1 and plog.held == 3
    started = time.perf_counter()
    assert plog.flush() == 0
    assert time.perf_counter() - started < 0.5  # within the backoff: no disk work at all
    assert plog.errors == 1
    blocked.unlink()
    # The retry comes after the backoff (0.5 s at first), then everything reaches the disk.
    wait_for(lambda: plog.flush() and plog.held == 0, "the held records to be written", 10, 0.1)
    plog.close()
    assert sorted(ids(blocked)) == ["r0", "r1", "r2"] and plog.dropped == 0


def test_what_a_failing_disk_holds_is_bounded_and_every_drop_counted(tmp_path):
    blocked = tmp_path / "log"
    blocked.write_text("not a directory")
    plog = PredictionLog(blocked, max_pending=5, fsync_seconds=60, schema=schema_for(german()))
    plog.append([record(i) for i in range(8)])
    assert plog.held == 5 and plog.dropped == 3
    assert plog.take_counts() == (1, 3) and plog.take_counts() == (0, 0)
    blocked.unlink()
    plog.close()  # a final attempt ignores the backoff
    assert sorted(ids(blocked)) == ["r3", "r4", "r5", "r6", "r7"]


def test_upkeep_never_waits_for_the_log_disk(tmp_path):
    from app.config import load_settings
    from app.serving.metrics import ServingMetrics
    from app.serving.upkeep import Upkeep

    plog = PredictionLog(tmp_path / "log", schema=schema_for(german()))
    upkeep = Upkeep(load_settings(_env_file=None), None, None, plog, ServingMetrics(), None)
    plog.append([record(0)])
    stuck, release = threading.Event(), threading.Event()

    def stuck_compaction() -> None:  # a compaction hung on a dead disk, for up to 5 s
        with plog._flush_lock:
            stuck.set()
            release.wait(5)

    holder = threading.Thread(target=stuck_compaction)
    holder.start()
    stuck.wait(5)
    started = time.perf_counter()
    upkeep.flush_log()  # what the upkeep step runs between its alias polls
    elapsed = time.perf_counter() - started
    release.set()
    holder.join()
    assert elapsed < 0.5, f"the upkeep step waited {elapsed:.2f} s for the log's disk"
    plog.close()
    assert ids(tmp_path / "log") == ["r0"]


def test_reading_a_missing_log_gives_an_empty_table(tmp_path):
    assert read_prediction_log(tmp_path / "none", schema_for(german())).num_rows == 0


def test_a_reader_of_a_few_columns_gets_every_record_and_only_those(tmp_path):
    schema = schema_for(german())
    plog = PredictionLog(tmp_path / "log", flush_rows=2, schema=schema)
    try:
        plog.append([record(0), record(1)])
        plog.flush()  # compacted to a Parquet part
        plog.append([record(2)])  # still in the journal
        columns = ["request_id", "logged_at", "shadow"]
        table = read_prediction_log(tmp_path / "log", schema, columns)
    finally:
        plog.close()
    assert table.column_names == columns
    assert sorted(table.column("request_id").to_pylist()) == ["r0", "r1", "r2"]
    assert table.schema.field("logged_at").type == schema.field("logged_at").type
