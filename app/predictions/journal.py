"""The prediction log's journal: append-only JSON-lines segments, and their compaction to Parquet.

A writer appends each batch of records to its own segment `_journal/<writer>-<seq>.jsonl` with
one `write()` on an O_APPEND descriptor, holding an exclusive `flock` on it while it is open.
The kernel drops that lock when the process dies, however it dies, so "unlocked" means "closed
by its writer or orphaned by a crash": any process may then compact it. A segment is born
locked: created as `.<name>.opening` (compactors and readers skip it), locked, then renamed
(the inode keeps the lock). An unlocked opening file (its writer died before the rename) or
empty segment is removed only once older than `GRACE_SECONDS`.

Compaction writes `date=<D>/part-<segment>.parquet` per logged day (temp file, fsync, rename,
fsync of the folder) and only then removes the segment; a crash between the two leaves both,
and readers take the segment and skip its parts, so a record is never read twice.
Recompaction overwrites the same part names. A segment the schema cannot hold is set aside as
`<segment>.bad`, which retention.py deletes once all its records are past the retention period.
A torn last line (a machine crash mid-write, a disk filling mid-write) is skipped and counted.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from app.fs import atomic_path

log = logging.getLogger(__name__)

JOURNAL_DIR = "_journal"  # a leading `_`: Parquet dataset readers skip it
SUFFIX = ".jsonl"
BAD = ".bad"  # appended to a segment set aside by compaction
OPENING = ".opening"  # `.<segment>.opening`: created, not yet locked and renamed by its writer
# An unlocked empty segment or opening file younger than this may be one its writer is about to
# lock: removing it would send the writer's records into an unlinked file.
GRACE_SECONDS = 60.0
UNREADABLE = (ValueError, TypeError, pa.ArrowException)  # records the schema cannot hold


class Backoff:
    """When a failing operation may be tried again: doubling delays, reset by a success."""

    def __init__(self, first: float = 0.5, most: float = 30.0) -> None:
        self.first, self.most = first, most
        self.failures = 0
        self.next_try = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self.next_try

    def failed(self) -> None:
        self.failures += 1
        self.next_try = time.monotonic() + min(self.most, self.first * 2 ** (self.failures - 1))

    def ok(self) -> None:
        self.failures, self.next_try = 0, 0.0


def writer_id() -> str:
    """Unique per writer process and log: host, pid (to spot a dead writer by eye), random."""
    host = re.sub(r"[^A-Za-z0-9]+", "", socket.gethostname())[:24] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy and pandas scalars
        return value.item()
    return str(value)  # never fail a request over an odd type: keep its text


_encode = json.JSONEncoder(default=_plain, separators=(",", ":"), ensure_ascii=False).encode


def encode_records(records: list[dict[str, Any]]) -> bytes:
    """One JSON line per record (JSON escapes newlines, so a line is exactly one record)."""
    return "".join([_encode(r) + "\n" for r in records]).encode()


def decode_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The records of a segment's bytes, and how many torn or garbled lines were skipped."""
    rows: list[dict[str, Any]] = []
    bad = 0
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


def to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows as the log's schema (timestamps parsed from ISO text); unknown keys keep their
    inferred type rather than being dropped."""
    columns: dict[str, pa.Array] = {}
    for f in schema:
        values = [r.get(f.name) for r in rows]
        if pa.types.is_timestamp(f.type):
            columns[f.name] = pa.array(values, pa.string()).cast(f.type)
        else:
            columns[f.name] = pa.array(values, f.type)
    extra = sorted({k for r in rows for k in r} - set(schema.names))
    for name in extra:
        columns[name] = pa.array([r.get(name) for r in rows])
    return pa.table(columns)


def segments(journal: Path) -> list[Path]:
    try:
        names = journal.iterdir()
        return sorted(p for p in names if p.name.endswith(SUFFIX) and not p.name.startswith("."))
    except FileNotFoundError:
        return []


def opening_path(segment: Path) -> Path:
    """The name a segment has from its creation until its writer holds its lock."""
    return segment.with_name(f".{segment.name}{OPENING}")


def part_name(segment: Path) -> str:
    return f"part-{segment.name.removesuffix(SUFFIX)}.parquet"


def read_segments(journal: Path, schema: pa.Schema) -> tuple[list[pa.Table], set[str]]:
    """Every segment's records (live writers' too, without locking) and the names of the parts
    those segments supersede. A segment compacted away meanwhile is simply absent: its parts
    are then on disk, for a caller that lists parts after this returns."""
    tables, superseded = [], set()
    for segment in segments(journal):
        try:
            data = segment.read_bytes()
        except FileNotFoundError:
            continue
        rows, _ = decode_lines(data)
        try:
            tables.append(to_table(rows, schema))
        except UNREADABLE as exc:  # compaction sets it aside; readers skip it
            log.warning("prediction log: %s skipped: %s", segment.name, exc)
            continue
        superseded.add(part_name(segment))
    return tables, superseded


@dataclass
class Compacted:
    segments: int = 0
    rows: int = 0
    torn: int = 0
    own_rows: int = 0  # rows of segments the caller wrote (the writer-id prefix given)


def compact_journal(directory: Path, schema: pa.Schema, own: str = "") -> Compacted:
    """Compact every unlocked segment into Parquet parts; raises on the first disk error (the
    segments left wait for the next attempt, nothing is lost)."""
    done = Compacted()
    journal = Path(directory) / JOURNAL_DIR
    _clear_openings(journal)
    for segment in segments(journal):
        rows, torn = _compact_segment(segment, Path(directory), schema)
        if rows is None:
            continue
        done.segments += 1
        done.rows += rows
        done.torn += torn
        if own and segment.name.startswith(own + "-"):
            done.own_rows += rows
    return done


def _compact_segment(segment: Path, directory: Path, schema: pa.Schema) -> tuple[int | None, int]:
    try:
        fd = os.open(segment, os.O_RDONLY)
    except FileNotFoundError:  # another compactor finished it
        return None, 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer is alive and still appending
            return None, 0
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
        if not data and time.time() - os.fstat(fd).st_mtime < GRACE_SECONDS:
            return None, 0  # see GRACE_SECONDS
        rows, torn = decode_lines(data)
        if torn:
            log.warning("prediction log: %d torn line(s) skipped in %s", torn, segment.name)
        try:
            table = to_table(rows, schema)
        except UNREADABLE as exc:
            # A record the schema cannot hold must not stop every later segment: kept aside
            # for a person to look at, its records counted as skipped.
            os.replace(segment, segment.with_name(segment.name + BAD))
            log.error("prediction log: %s set aside as .bad: %s", segment.name, exc)
            return 0, len(rows) + torn
        if rows:
            _write_parts(table, directory, part_name(segment))
        segment.unlink(missing_ok=True)
        return len(rows), torn
    finally:
        os.close(fd)


def _clear_openings(journal: Path) -> None:
    """Remove what writers that died between creating and renaming a segment left behind."""
    for path in sorted(journal.glob(f".*{OPENING}")):
        try:
            # Not even opened while young: a lock taken here would make its writer's fail.
            if time.time() - path.stat().st_mtime < GRACE_SECONDS:
                continue
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_size == 0:
                path.unlink(missing_ok=True)
            else:
                # Writers write only after the rename: records here mean a machine crash lost
                # the rename but not the data. Named as the segment, they are compacted below.
                os.rename(path, path.with_name(path.name[1:].removesuffix(OPENING)))
        except BlockingIOError:  # its writer is alive, paused before the rename
            pass
        finally:
            os.close(fd)


def _write_parts(table: pa.Table, directory: Path, name: str) -> None:
    """One part per logged day (a segment may straddle midnight), each atomic and durable."""
    days = [_day(t) for t in table.column("logged_at").to_pylist()]
    for day in sorted(set(days)):
        mask = pa.array([d == day for d in days])
        folder = directory / f"date={day:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / name, fsync=True) as tmp:
            pq.write_table(table.filter(mask), tmp)
        # The rename must be on disk before the segment's unlink can be.
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _day(stamp: datetime | None) -> date:
    return (stamp or datetime.now(UTC)).astimezone(UTC).date()


def read_log(
    directory: Path, schema: pa.Schema, columns: Sequence[str] | None = None, where=None
) -> pa.Table:
    """The Parquet parts plus the segments not compacted yet, each record once; only
    `columns` (no partition `date`) and only records `where` (an Arrow expression, applied as
    parts are read) holds for, when given: a few of millions at little memory."""
    import pyarrow.dataset as ds

    # Segments first, parts second: a segment compacted in between is then read as its parts.
    tables, superseded = read_segments(directory / JOURNAL_DIR, schema)
    tables = tables if where is None else [t.filter(where) for t in tables]
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
        tables = [t.select(list(columns)) for t in tables]
    found = sorted(directory.glob("date=*/*.parquet"))
    parts = [str(p) for p in found if p.name not in superseded and p.name[0] not in "._"]
    if parts:
        hive = {"format": "parquet", "partitioning": "hive", "partition_base_dir": str(directory)}
        # Inferred from the first part only: an older part would hide columns added since.
        unified = pa.unify_schemas([schema, ds.dataset(parts, **hive).schema])
        kept = None if columns is None else list(columns)
        tables.insert(0, ds.dataset(parts, schema=unified, **hive).to_table(kept, filter=where))
    if not tables:
        return schema.empty_table()
    if columns is not None:
        return pa.concat_tables(tables, promote_options="default")
    for i, table in enumerate(tables):
        if "date" not in table.column_names:  # the hive partition column the parts carry
            days = table.column("logged_at").cast(pa.date32()).cast(pa.string())
            tables[i] = table.append_column("date", days)
    return pa.concat_tables(tables, promote_options="default")
