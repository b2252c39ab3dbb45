"""The prediction log: every decision (and shadow score) as Parquet parts, written in batches.

Each replica buffers records and writes a part file when `flush_rows` are pending or on the
periodic flush; a part is written to a hidden temp name and renamed, so readers never see a
half-written file. Writing must never fail a request: errors are counted and the records kept
for the next attempt, up to `max_pending` (the oldest are dropped beyond it, and counted).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from app.training.preprocess import FeatureEncoder

log = logging.getLogger(__name__)

META_FIELDS: list[pa.Field] = [
    pa.field("request_id", pa.string()),
    pa.field("logged_at", pa.timestamp("us", tz="UTC")),
    pa.field("applicant_id", pa.string()),
    pa.field("variant", pa.string()),
    pa.field("shadow", pa.bool_()),
    pa.field("model_name", pa.string()),
    pa.field("model_version", pa.string()),
    pa.field("probability_of_default", pa.float64()),
    pa.field("decision", pa.string()),
    pa.field("reasons", pa.string()),  # JSON list, as in the response
    pa.field("features_as_of", pa.timestamp("us", tz="UTC")),
]


def log_schema(encoder: FeatureEncoder | None = None) -> pa.Schema:
    """Decision metadata plus every raw feature the model saw (for drift checks and audit)."""
    encoder = encoder or FeatureEncoder.default()
    features = [pa.field(c, pa.float64()) for c in encoder.numeric]
    features += [pa.field(c, pa.string()) for c in encoder.categorical]
    return pa.schema(META_FIELDS + features)


class PredictionLog:
    def __init__(
        self,
        directory: Path,
        flush_rows: int = 500,
        max_pending: int = 100_000,
        schema: pa.Schema | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.flush_rows = flush_rows
        self.max_pending = max_pending
        self.schema = schema or log_schema()
        self._pending: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer_id = uuid.uuid4().hex[:8]
        self._seq = 0
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def append(self, records: list[dict[str, Any]]) -> bool:
        """Queue records; True when enough are pending that the caller should flush."""
        with self._lock:
            self._pending.extend(records)
            overflow = len(self._pending) - self.max_pending
            for _ in range(max(0, overflow)):
                self._pending.popleft()
            if overflow > 0:
                self.dropped += overflow
            return len(self._pending) >= self.flush_rows

    def flush(self) -> int:
        """Write everything pending as one part; returns the records written (0 on failure)."""
        with self._write_lock:
            with self._lock:
                batch = list(self._pending)
            if not batch:
                return 0
            try:
                self._write(batch)
            except Exception as exc:  # a full disk or lost volume must not reach a request
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("prediction log write failed (%d pending): %s", len(batch), exc)
                return 0
            with self._lock:
                for _ in range(min(len(batch), len(self._pending))):
                    self._pending.popleft()
            self.written += len(batch)
            return len(batch)

    def _write(self, batch: list[dict[str, Any]]) -> Path:
        now = datetime.now(UTC)
        table = pa.Table.from_pylist(batch, schema=self.schema)
        folder = self.directory / f"date={now:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"part-{now:%H%M%S%f}-{self._writer_id}-{self._seq:06d}.parquet"
        tmp = folder / f".{name}.tmp"
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, folder / name)
        finally:
            tmp.unlink(missing_ok=True)
        return folder / name


def read_prediction_log(directory: Path) -> pa.Table:
    """Every written record (hidden temp files are skipped by the dataset reader)."""
    import pyarrow.dataset as ds

    if not Path(directory).exists():
        return log_schema().empty_table()
    dataset = ds.dataset(directory, format="parquet", partitioning="hive", schema=None)
    return dataset.to_table()
