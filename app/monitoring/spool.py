"""The drift monitor's durable spool: the rows it has acknowledged and not yet checked.

Every batch received is written to its own Arrow file before it is acknowledged, so a crash
and restart resumes with the same rows (`recover`); a check takes the batches there are and,
once done with them, `commit`s exactly those, which deletes their files. The spool is bounded:
beyond `max_rows` the oldest batches are dropped (and counted).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from app.fs import atomic_path
from app.monitoring.window import SAMPLE_RATE

log = logging.getLogger(__name__)


def represented_rows(tables: list[pa.Table]) -> int:
    """The answered decisions these rows stand for (more than them when sampled)."""
    rates = [t.column(SAMPLE_RATE).to_numpy(zero_copy_only=False) for t in tables]
    return round(sum(float((1.0 / np.nan_to_num(r, nan=1.0)).sum()) for r in rates))


class Batch(NamedTuple):
    path: Path  # the durable copy
    table: pa.Table


def _write_batch(path: Path, table: pa.Table) -> None:
    # Renamed into place: a crash mid-write leaves a hidden temp, never a torn batch. No
    # fsync: the rows must survive the actor process dying, which the page cache does.
    with atomic_path(path) as tmp, ipc.new_file(str(tmp), table.schema) as writer:
        writer.write_table(table)


def _read_batch(path: Path) -> pa.Table:
    with ipc.open_file(str(path)) as reader:
        return reader.read_all()


class Spool:
    """Batches of window rows in arrival order, each with its file in `folder`."""

    def __init__(self, folder: Path, schema: pa.Schema, max_rows: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._batches: list[Batch] = []
        self.rows = 0
        self.received = 0
        self.dropped = 0
        self.recovered = 0

    def recover(self) -> int:
        """Take back the batches a previous process spooled; returns how many rows."""
        for path in sorted(self.folder.glob("*.arrow")):
            try:
                table = _read_batch(path)
            except Exception as exc:  # a corrupt batch is set aside, not fatal
                log.warning("unreadable spool batch %s set aside: %s", path.name, exc)
                path.rename(path.with_suffix(".bad"))
                continue
            if SAMPLE_RATE not in table.column_names:  # spooled before rows carried a rate
                table = table.append_column(SAMPLE_RATE, pa.array([1.0] * table.num_rows))
            for missing in (f for f in self.schema if f.name not in table.column_names):
                # A field kept since (the decision): unknown for these rows, not invented.
                table = table.append_column(missing, pa.nulls(table.num_rows, missing.type))
            table = table.select(self.schema.names)
            self._batches.append(Batch(path, table.cast(self.schema)))
            self.rows += table.num_rows
            self.recovered += table.num_rows
        if self.recovered:
            log.info("resumed with %d spooled rows", self.recovered)
        return self.recovered

    def submit(self, records: list[dict[str, Any]]) -> tuple[int, int]:
        """Spool decision records (prediction-log dicts): (rows kept, old rows dropped)."""
        if not records:
            return 0, 0
        table = pa.Table.from_pylist(
            [{k: r.get(k) for k in self.schema.names} for r in records], schema=self.schema
        )
        with self._lock:
            path = self.folder / f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}.arrow"
            _write_batch(path, table)
            self._batches.append(Batch(path, table))
            self.rows += table.num_rows
            self.received += table.num_rows
            return table.num_rows, self._enforce_bound()

    def _enforce_bound(self) -> int:
        dropped = 0
        while self.rows > self.max_rows and len(self._batches) > 1:
            path, table = self._batches.pop(0)
            path.unlink(missing_ok=True)
            self.rows -= table.num_rows
            dropped += table.num_rows
        self.dropped += dropped
        return dropped

    def take(self) -> list[Batch]:
        """The batches spooled now, oldest first; they stay spooled until `commit`."""
        with self._lock:
            return list(self._batches)

    def commit(self, used: list[Batch]) -> None:
        """Done with these batches (a check used them): forget them and delete their files."""
        paths = {b.path for b in used}
        with self._lock:
            self._batches = [b for b in self._batches if b.path not in paths]
            self.rows = sum(b.table.num_rows for b in self._batches)
        for path in paths:
            path.unlink(missing_ok=True)

    def represented(self) -> int:
        """The answered decisions the spooled rows stand for."""
        return represented_rows([b.table for b in self.take()])
