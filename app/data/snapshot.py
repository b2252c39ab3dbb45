"""Offline snapshots: content-addressed Parquet folders, swapped in atomically via a symlink."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from app.dataset import TableSpec
from app.errors import SnapshotError
from app.fs import atomic_path
from app.waiting import WaitTimeout, poll

CURRENT = "current"
SNAPSHOTS = "snapshots"
MANIFEST = "manifest.json"


def table_path(offline_dir: Path, table: str) -> Path:
    """Where the current snapshot's table is read from (a stable path for Feast sources)."""
    return offline_dir / CURRENT / f"{table}.parquet"


def current_snapshot(offline_dir: Path) -> Path:
    """The folder `current` points at; fails clearly when nothing was ingested yet."""
    link = offline_dir / CURRENT
    if not link.exists():
        raise SnapshotError(
            f"no offline snapshot in {offline_dir}: run `python -m jobs.ingest` first"
        )
    return link.resolve()


def read_manifest(offline_dir: Path) -> dict[str, Any]:
    return json.loads((current_snapshot(offline_dir) / MANIFEST).read_text())


# pyarrow's default row-group length: tables are written in row groups of this many rows, so a
# table comes out byte for byte the same whether it arrives whole (pandas) or in parts (Arrow).
ROW_GROUP_ROWS = 1024 * 1024
_HASH_CHUNK = 1 << 20


def _arrow_part(part: pd.DataFrame | pa.Table, schema: pa.Schema) -> pa.Table:
    if isinstance(part, pd.DataFrame):
        part = pa.Table.from_pandas(part, schema=schema, preserve_index=False)
    elif not part.schema.equals(schema, check_metadata=False):
        part = part.select(schema.names).cast(schema)
    # One chunk per column: how the values happened to be chunked (Ray blocks) must not move
    # page boundaries, or equal rows would give different bytes and another snapshot id.
    return part.combine_chunks()


def _hash_and_sync(path: Path, *digests: Any) -> None:
    """Feed the file to the digests and make it durable, in one read of it."""
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            for digest in digests:
                digest.update(chunk)
        os.fsync(f.fileno())


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


_TMP_PREFIX = ".tmp-"


def _remove_abandoned(snapshots: Path) -> None:
    """Delete half-written folders of killed ingests: those made on this host by a process
    that no longer runs (another host's, or a live writer's, are left alone)."""
    host = socket.gethostname()
    for path in snapshots.glob(f"{_TMP_PREFIX}*"):
        # .tmp-<host>-<pid>-<random>
        owner, _, pid = path.name[len(_TMP_PREFIX) :].rpartition("-")[0].rpartition("-")
        if owner != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


# Set by the crash test only: the writer announces its written-but-unpublished folder in this
# file and waits there to be killed, so the test kills it at that point and no other.
HOLD_ENV = "CREDIT_TEST_HOLD_SNAPSHOT"


def _hold_for_tests(tmp: Path) -> None:
    marker = os.environ.get(HOLD_ENV)
    if not marker:
        return
    Path(marker).write_text(str(tmp))
    with contextlib.suppress(WaitTimeout):
        poll(lambda: not Path(marker).exists(), "the test to kill this writer", 600, 0.05)


class SnapshotWriter:
    """Builds one snapshot table by table in a temporary folder; `publish` makes it current.

    The folder is renamed to its content hash and then published by replacing the `current`
    symlink (rename is atomic on POSIX). Leaving the `with` block unpublished, or a crash at
    any point, leaves the previous snapshot current and intact. Identical input gives the
    identical snapshot id. `seconds` is the time spent in the writer.
    """

    def __init__(self, offline_dir: Path, tables: dict[str, TableSpec]) -> None:
        self.offline_dir, self.tables = offline_dir, tables
        self.snapshots = offline_dir / SNAPSHOTS
        self.tmp: Path | None = None
        self.rows: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.seconds = 0.0

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.tmp is not None and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    @contextlib.contextmanager
    def _timed(self) -> Iterator[Path]:
        started = time.perf_counter()
        try:
            if self.tmp is None:  # created on first use, so a failed read leaves no folder
                self.snapshots.mkdir(parents=True, exist_ok=True)
                _remove_abandoned(self.snapshots)
                host, pid = socket.gethostname(), os.getpid()
                tmp = self.snapshots / f"{_TMP_PREFIX}{host}-{pid}-{uuid.uuid4().hex}"
                tmp.mkdir()
                self.tmp = tmp
            yield self.tmp
        finally:
            self.seconds += time.perf_counter() - started

    def write_table(self, name: str, parts: Iterable[pd.DataFrame | pa.Table]) -> None:
        """Stream the table's rows, in order, into `<name>.parquet`."""
        with self._timed() as tmp:
            schema, rows = self.tables[name].arrow_schema, 0
            try:
                # The spec's schema, without pandas' metadata: the bytes depend only on the
                # values, whichever source (and pandas dtypes) the rows came through.
                with pq.ParquetWriter(tmp / f"{name}.parquet", schema) as writer:
                    for part in parts:
                        table = _arrow_part(part, schema)
                        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                        rows += table.num_rows
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                # Validation should have stopped such rows; say which table, not Arrow's
                # internals.
                raise SnapshotError(f"table {name!r} does not fit its schema: {exc}") from None
            self.rows[name] = rows

    def write_rejects(self, name: str, rejects: pd.DataFrame) -> None:
        with self._timed() as tmp:
            if len(rejects):
                rejects.to_csv(tmp / f"rejects_{name}.csv", index=False)
            self.rejected[name] = len(rejects)

    def publish(self, source: dict[str, Any]) -> tuple[str, Path]:
        """Make the written tables the current snapshot: (snapshot id, its folder)."""
        with self._timed() as tmp:
            digest, hashes = hashlib.sha256(), {}
            for name in sorted(self.rows):
                digest.update(name.encode())
                hashes[name] = hashlib.sha256()
                _hash_and_sync(tmp / f"{name}.parquet", digest, hashes[name])
            snapshot_id = digest.hexdigest()[:16]
            final = self.snapshots / snapshot_id
            if not final.exists():
                manifest = {
                    "snapshot_id": snapshot_id,
                    "source": source,
                    "tables": {
                        name: {
                            "rows": rows,
                            "rejected": self.rejected.get(name, 0),
                            "sha256": hashes[name].hexdigest(),
                        }
                        for name, rows in self.rows.items()
                    },
                }
                _write_file(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
                _hold_for_tests(tmp)
                tmp.rename(final)
            with atomic_path(self.offline_dir / CURRENT) as link:
                link.symlink_to(Path(SNAPSHOTS) / snapshot_id, target_is_directory=True)
            return snapshot_id, final


def write_snapshot(
    offline_dir: Path,
    valid: dict[str, pd.DataFrame],
    rejects: dict[str, pd.DataFrame],
    source: dict[str, Any],
    tables: dict[str, TableSpec],
) -> tuple[str, Path]:
    """Write whole tables and make them current, all or nothing (see `SnapshotWriter`)."""
    with SnapshotWriter(offline_dir, tables) as writer:
        for name, df in valid.items():
            writer.write_table(name, [df])
        for name, df in rejects.items():
            writer.write_rejects(name, df)
        return writer.publish(source)


def load_snapshot(
    offline_dir: Path, table: str, *, head: int | None = None, where: tuple | None = None
) -> pd.DataFrame:
    """One table of the current snapshot as pandas: its first `head` rows only (read a batch
    at a time, not the table), or the rows matching a pyarrow filter `where`
    (`(column, "==", value)`), or all of it."""
    path = table_path(offline_dir, table)
    if not path.exists():
        current_snapshot(offline_dir)
        raise SnapshotError(f"snapshot has no table {table!r}: {path}")
    if head is not None:
        batches = pq.ParquetFile(path).iter_batches(batch_size=max(head, 1))
        first = next(batches, None)
        if first is None:
            return pq.read_schema(path).empty_table().to_pandas()
        return pa.Table.from_batches([first]).slice(0, head).to_pandas()
    if where is not None:
        return pq.read_table(path, filters=[where]).to_pandas()
    return pd.read_parquet(path)
