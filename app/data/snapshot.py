"""Offline snapshots: content-addressed Parquet folders, swapped in atomically via a symlink."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import uuid
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


def _parquet_bytes(df: pd.DataFrame, schema: pa.Schema) -> bytes:
    sink = pa.BufferOutputStream()
    # Without pandas' metadata the bytes depend only on the values and the schema, so the same
    # rows give the same snapshot whichever source (and pandas dtypes) they came through.
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    pq.write_table(table.replace_schema_metadata(None), sink)
    return sink.getvalue().to_pybytes()


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


def _encode_tables(
    valid: dict[str, pd.DataFrame], tables: dict[str, TableSpec]
) -> dict[str, bytes]:
    encoded = {}
    for name, df in valid.items():
        try:
            encoded[name] = _parquet_bytes(df, tables[name].arrow_schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            # Validation should have stopped such rows; say which table, not Arrow's internals.
            raise SnapshotError(f"table {name!r} does not fit its schema: {exc}") from None
    return encoded


def _manifest(
    snapshot_id: str,
    source: dict[str, Any],
    valid: dict[str, pd.DataFrame],
    rejects: dict[str, pd.DataFrame],
    encoded: dict[str, bytes],
) -> dict[str, Any]:
    return {
        "snapshot_id": snapshot_id,
        "source": source,
        "tables": {
            name: {
                "rows": len(valid[name]),
                "rejected": len(rejects.get(name, ())),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            for name, data in encoded.items()
        },
    }


def write_snapshot(
    offline_dir: Path,
    valid: dict[str, pd.DataFrame],
    rejects: dict[str, pd.DataFrame],
    source: dict[str, Any],
    tables: dict[str, TableSpec],
) -> tuple[str, Path]:
    """Write the tables and make them current, all or nothing.

    Files go to a temporary folder, which is renamed to its content hash and then published by
    replacing the `current` symlink (rename is atomic on POSIX). A crash at any point leaves the
    previous snapshot current and intact. Identical input gives the identical snapshot id.
    """
    snapshots = offline_dir / SNAPSHOTS
    snapshots.mkdir(parents=True, exist_ok=True)
    encoded = _encode_tables(valid, tables)
    digest = hashlib.sha256()
    for name in sorted(encoded):
        digest.update(name.encode())
        digest.update(encoded[name])
    snapshot_id = digest.hexdigest()[:16]
    final = snapshots / snapshot_id

    _remove_abandoned(snapshots)
    if not final.exists():
        tmp = snapshots / f"{_TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            for name, data in encoded.items():
                _write_file(tmp / f"{name}.parquet", data)
            for name, df in rejects.items():
                if len(df):
                    df.to_csv(tmp / f"rejects_{name}.csv", index=False)
            manifest = _manifest(snapshot_id, source, valid, rejects, encoded)
            _write_file(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
            _hold_for_tests(tmp)
            tmp.rename(final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    with atomic_path(offline_dir / CURRENT) as link:
        link.symlink_to(Path(SNAPSHOTS) / snapshot_id, target_is_directory=True)
    return snapshot_id, final


def load_snapshot(offline_dir: Path, table: str) -> pd.DataFrame:
    """One table of the current snapshot as pandas."""
    path = table_path(offline_dir, table)
    if not path.exists():
        current_snapshot(offline_dir)
        raise SnapshotError(f"snapshot has no table {table!r}: {path}")
    return pd.read_parquet(path)
