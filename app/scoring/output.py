"""Batch-scoring results on disk: a directory of parts swapped into place, and the report's
counts read back from it a few columns at a time."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.dataset import TableSpec


def replace_dir(staging: Path, final: Path) -> None:
    """`staging` renamed to `final`, whatever `final` was (a directory of parts, or the single
    file earlier versions wrote)."""
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex}")
    if final.exists():
        final.rename(old)
    staging.rename(final)
    if old.is_dir():
        shutil.rmtree(old)
    elif old.exists():
        old.unlink()


def count_scores(path: Path, spec: TableSpec) -> dict[str, int]:
    """Rows, scored, unknown, declined and offered of written results, read a few columns and
    a part at a time; a result without parts gets one empty part, so it is readable."""
    files = sorted(Path(path).glob("*.parquet"))
    if not files:
        pq.write_table(spec.arrow_schema.empty_table(), Path(path) / "empty.parquet")
        files = sorted(Path(path).glob("*.parquet"))
    offered = [c for c in spec.columns if c.startswith("counter_offer_")][:1]
    counts = dict.fromkeys(("rows", "scored", "unknown", "declined", "offered"), 0)
    for file in files:
        part = pq.read_table(file, columns=["status", "decision", *offered])
        counts["rows"] += part.num_rows
        counts["scored"] += _count(part["status"], "scored")
        counts["unknown"] += _count(part["status"], "unknown_applicant")
        counts["declined"] += _count(part["decision"], "decline")
        if offered:  # declines with a counter-offer (none without levers)
            counts["offered"] += part.num_rows - part[offered[0]].null_count
    return counts


def _count(column: pa.ChunkedArray, value: str) -> int:
    return int(pc.sum(pc.equal(column, value)).as_py() or 0)
