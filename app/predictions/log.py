"""The prediction log: every decision (and shadow score), on disk before its answer leaves.

`append` writes each batch to this writer's append-only journal segment (journal.py) with one
`write()`: once it returns, the records are in the kernel's page cache, so a killed replica
(SIGKILL, OOM) loses nothing; a later compaction, by this writer or any other, turns them into
Parquet parts `date=YYYY-MM-DD/part-*.parquet`, the format readers see. A crash of the machine
itself can lose what the kernel had not yet written back: a background thread fsyncs the open
segment every `fsync_seconds`, which bounds that window (compacted parts are fsynced).

A disk that refuses writes never fails a request: the records are held in memory (at most
`max_pending`; beyond it the oldest are dropped, and counted) and retried with exponential
backoff by the log's own thread, which also does all compaction, so a slow or failing disk
never holds up the replica's upkeep (alias polling).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from app.predictions.journal import (
    JOURNAL_DIR,
    SUFFIX,
    Backoff,
    compact_journal,
    encode_records,
    opening_path,
    read_log,
    writer_id,
)

log = logging.getLogger(__name__)

DRAIN_CHUNK = 1000  # held records rewritten per write() once the disk is back


class PredictionLog:
    def __init__(
        self,
        directory: Path,
        flush_rows: int = 500,
        max_pending: int = 100_000,
        *,
        schema: pa.Schema,
        fsync_seconds: float = 1.0,
    ) -> None:
        self.directory = Path(directory)
        self.flush_rows = flush_rows
        self.max_pending = max_pending
        self.schema = schema
        self.fsync_seconds = fsync_seconds
        self.writer = writer_id()
        self._seq = 0
        self._fd: int | None = None  # the open segment, flock'ed while open
        self._segment_rows = 0
        self._dirty = False  # written since its last fsync
        self._held: deque[dict[str, Any]] = deque()  # what the disk refused, oldest first
        self._journal_rows = 0  # this writer's records in segments not yet compacted
        self._lock = threading.Lock()  # the request path's: fd, held records, counters
        self._flush_lock = threading.Lock()  # one compaction at a time
        self._append_backoff = Backoff()
        self._flush_backoff = Backoff()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.journaled = 0  # records appended to the journal
        self.written = 0  # records compacted into Parquet (any writer's segments)
        self.dropped = 0  # records lost: held in memory beyond max_pending
        self.errors = 0  # failed disk operations (each retried)
        self.torn = 0  # records skipped in compaction: torn lines, segments set aside (.bad)
        self.last_error: str | None = None
        self._reported = (0, 0)

    @property
    def pending(self) -> int:
        """This writer's records not yet in a Parquet part (journal and memory)."""
        return self._journal_rows + len(self._held)

    @property
    def held(self) -> int:
        """Records only in memory (the disk refused them): the ones a kill would lose."""
        return len(self._held)

    def append(self, records: list[dict[str, Any]]) -> bool:
        """Journal a batch before its answers are returned; True when a compaction is due (the
        log's thread is woken for it). Never raises for a disk error."""
        if not records:
            return False
        data = encode_records(records)  # outside the lock: the costly part
        with self._lock:
            if self._held or not self._append_backoff.ready():
                self._hold(records)  # the disk failed lately: the log's thread retries
            else:
                self._write(records, data)
            due = self._segment_rows >= self.flush_rows
            if self._thread is None:
                self._start()
        if due:
            self._wake.set()
        return due

    def _write(self, records: list[dict[str, Any]], data: bytes) -> None:
        """Append to the open segment (under `_lock`); what the disk refuses is held."""
        try:
            if self._fd is None:
                self._open_segment()
            done = os.write(self._fd, data)
        except OSError as exc:
            self._failed(exc, self._append_backoff)
            self._abandon_segment()
            self._hold(records, front=True)
            return
        whole = len(records) if done == len(data) else data.count(b"\n", 0, done)
        if whole < len(records):  # a disk filling mid-write: its torn tail is skipped on read
            self._failed(
                OSError(f"short write ({done} of {len(data)} bytes)"), self._append_backoff
            )
            self._abandon_segment()
            self._hold(records[whole:], front=True)
        else:
            self._append_backoff.ok()
        self.journaled += whole
        self._journal_rows += whole
        self._segment_rows += whole
        self._dirty = self._dirty or whole > 0

    def _open_segment(self) -> None:
        journal = self.directory / JOURNAL_DIR
        journal.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        path = journal / f"{self.writer}-{self._seq:06d}{SUFFIX}"
        # Created under a name compactors skip and renamed once locked: a compactor never sees
        # it unlocked, so never removes it as an empty closed segment under its writer.
        opening = opening_path(path)
        fd = os.open(opening, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            # Held until the segment is closed (or the process dies): no one compacts it
            # meanwhile. The rename keeps the inode, so the lock with it.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(opening, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                opening.unlink()
            raise
        self._fd, self._segment_rows, self._dirty = fd, 0, False

    def _close_segment(self) -> int | None:
        """Detach the open segment (under `_lock`); the caller syncs and closes what it gets."""
        fd, self._fd, self._segment_rows = self._fd, None, 0
        return fd

    def _abandon_segment(self) -> None:
        """Close a segment the disk failed on (no fsync: the disk is failing); compaction
        takes what reached it."""
        fd = self._close_segment()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _hold(self, records: list[dict[str, Any]], front: bool = False) -> None:
        if front:
            self._held.extendleft(reversed(records))
        else:
            self._held.extend(records)
        overflow = len(self._held) - self.max_pending
        for _ in range(max(0, overflow)):
            self._held.popleft()
        if overflow > 0:
            self.dropped += overflow
            log.error("prediction log: %d records dropped (disk failing, memory full)", overflow)

    def _failed(self, exc: Exception, backoff: Backoff) -> None:
        self.errors += 1
        backoff.failed()
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        wait = max(0.0, backoff.next_try - time.monotonic())
        log.warning("prediction log: %s (retry in %.1f s)", self.last_error, wait)

    # --- the log's own thread: fsync, retries, compaction --------------------------------
    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self.fsync_seconds)
            self._wake.clear()
            try:
                self.sync()
                if woken or self._held:
                    self.flush()
            except Exception:  # the thread must outlive any single failure
                log.exception("prediction log upkeep failed")

    def request_flush(self) -> None:
        """Ask the log's thread to compact now (returns at once; never touches the disk)."""
        self._wake.set()

    def sync(self) -> None:
        """fsync what was appended since the last call: bounds a machine crash's loss."""
        with self._lock:
            if self._fd is None or not self._dirty:
                return
            fd, self._dirty = os.dup(self._fd), False  # a dup: rotation may close the original
        self._sync_and_close(fd)

    def flush(self, force: bool = False) -> int:
        """Rewrite held records to the journal, close the open segment and compact every
        closed or orphaned segment; returns the records compacted. Skipped while backing off
        from a failure (unless `force`); never raises for a disk error."""
        with self._flush_lock:
            self._drain(force)
            with self._lock:
                fd = self._close_segment()
            if fd is not None:
                self._sync_and_close(fd)
            # Backing off from a failed compaction, or from a disk refusing journal writes.
            if not (force or (self._flush_backoff.ready() and self._append_backoff.ready())):
                return 0
            try:
                done = compact_journal(self.directory, self.schema, own=self.writer)
            except Exception as exc:
                with self._lock:
                    self._failed(exc, self._flush_backoff)
                return 0
            with self._lock:
                self._flush_backoff.ok()
                self.written += done.rows
                self.torn += done.torn
                self._journal_rows -= done.own_rows
            return done.rows

    def _drain(self, force: bool) -> None:
        """Held records back to the journal, a chunk per write, once the backoff allows."""
        while self._held and (force or self._append_backoff.ready()):
            with self._lock:
                chunk = [self._held.popleft() for _ in range(min(DRAIN_CHUNK, len(self._held)))]
            data = encode_records(chunk)
            with self._lock:
                self._write(chunk, data)
                if self._fd is None:  # refused again: wait for the backoff
                    return

    def _sync_and_close(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            with self._lock:
                self._failed(exc, self._flush_backoff)
        finally:
            os.close(fd)  # the segment's last fd releases the flock: it is compactable now

    def take_counts(self) -> tuple[int, int]:
        """(errors, dropped) since the last call: for counters kept elsewhere."""
        with self._lock:
            now = (self.errors, self.dropped)
            before, self._reported = self._reported, now
        return now[0] - before[0], now[1] - before[1]

    def close(self) -> None:
        """Stop the log's thread and compact what this writer journaled (never raises)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush(force=True)
        if self._held:
            log.error("prediction log: %d records never reached the disk", len(self._held))


def compact_prediction_log(directory: Path, schema: pa.Schema) -> int:
    """Compact every segment no live writer holds (a killed replica's); returns the rows.
    `schema`: the log's (`schema_for(dataset)`); a record it cannot hold is set aside."""
    return compact_journal(Path(directory), schema).rows


def read_prediction_log(
    directory: Path, schema: pa.Schema, columns: Sequence[str] | None = None, where=None
) -> pa.Table:
    """Every logged record: the Parquet parts and journal segments not compacted yet (a live
    or a killed writer's), each record once, typed by `schema` (`schema_for(dataset)`); only
    `columns` of each, and only those `where` (a pyarrow.compute expression) holds for, when
    given."""
    return read_log(Path(directory), schema, columns, where)
