"""Ingest: read each warehouse table through Ray Data, validate, and publish an offline snapshot."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import ray

from app.config import Settings
from app.data.ingest_table import check_table
from app.data.snapshot import ROW_GROUP_ROWS, SnapshotWriter
from app.data.sources import read_table
from app.data.validation import annotate_batch, output_schema
from app.dataset import Dataset, TableSpec
from app.errors import CreditRiskError, SourceError

log = logging.getLogger(__name__)


@dataclass
class TableReport:
    name: str
    read: int
    valid: int
    rejected: int
    top_reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class IngestReport:
    snapshot_id: str
    snapshot_path: str
    seconds: float
    tables: list[TableReport]
    write_seconds: float = 0.0  # of `seconds`: encoding and writing the snapshot

    @property
    def rejected(self) -> int:
        return sum(t.rejected for t in self.tables)

    def summary(self) -> str:
        """Rows read, kept and rejected per table, the top reject reasons, and where it went."""
        lines = []
        for table in self.tables:
            lines.append(
                f"{table.name:<22} read {table.read:>9,}  valid {table.valid:>9,}  "
                f"rejected {table.rejected:>7,}"
            )
            lines += [f"    {count:>7,} x {reason}" for reason, count in table.top_reasons.items()]
        lines.append(f"snapshot {self.snapshot_id} -> {self.snapshot_path} ({self.seconds:.1f} s)")
        if self.rejected:
            lines.append(
                f"rejected rows and their reasons: {self.snapshot_path}/rejects_<table>.csv"
            )
        return "\n".join(lines)


def _root_cause(exc: BaseException) -> BaseException:
    """Ray wraps task failures; the user needs the original error."""
    cause = getattr(exc, "cause", None)
    while cause is not None and cause is not exc:
        exc, cause = cause, getattr(cause, "cause", None)
    return exc


# Rows per validation task. A source file often reads as one block (one row group), which
# would validate on a single core holding the whole table as pandas; blocks this size spread
# the work over the cluster and bound each task's memory.
ROWS_PER_TASK = 65_536


def read_annotated(spec: TableSpec, settings: Settings) -> pa.Table:
    """The table's rows, typed, each with a reject reason or none (duplicates not yet
    flagged), in the source's row order."""
    try:
        ds = (
            read_table(spec, settings)
            .repartition(target_num_rows_per_block=ROWS_PER_TASK)
            .map_batches(annotate_batch, fn_kwargs={"spec": spec}, batch_format="pandas")
        )
        # Which reject comes first (and the rejects file's order) follows the source rows.
        ds.context.execution_options.preserve_order = True
        blocks = ray.get(ds.to_arrow_refs())
    except CreditRiskError:
        raise
    except Exception as exc:  # Ray re-raises task errors wrapped; unwrap for the message.
        root = _root_cause(exc)
        if isinstance(root, CreditRiskError):
            raise root from None
        raise SourceError(f"reading table {spec.name!r} failed: {root}") from None
    if not blocks:
        return output_schema(spec).empty_table()
    return pa.concat_tables(blocks)


def read_and_validate(spec: TableSpec, settings: Settings) -> pd.DataFrame:
    """`read_annotated` as pandas, for a table small enough for memory."""
    return read_annotated(spec, settings).to_pandas()


def _top_reasons(rejects_df: pd.DataFrame, limit: int = 5) -> dict[str, int]:
    if rejects_df.empty:
        return {}
    # Group by the first clause so "age=150 outside ..." and "=151" count together.
    kinds = rejects_df["reason"].str.split(";").str[0].str.replace(r"=.*? ", " ", regex=True)
    return kinds.value_counts().head(limit).to_dict()


def source_description(settings: Settings) -> dict[str, Any]:
    """Where the data came from, for the manifest; never includes credentials."""
    if settings.source == "snowflake":
        return {
            "type": "snowflake",
            "account": settings.snowflake_account,
            "database": settings.snowflake_database,
            "schema": settings.snowflake_schema,
        }
    return {"type": "local", "path": str(settings.local_source_dir)}


def _ingest_table(
    name: str, spec: TableSpec, settings: Settings, writer: SnapshotWriter
) -> TableReport:
    annotated = read_annotated(spec, settings)
    if not annotated.num_rows:
        raise SourceError(f"table {name!r} in the {settings.source} source has no rows")
    checked = check_table(annotated, spec)
    rejects = checked.rejects
    if not len(checked.valid):
        raise SourceError(
            f"table {name!r}: all {annotated.num_rows} rows were rejected; "
            f"first reason: {rejects['reason'].iloc[0]}"
        )
    writer.write_table(name, checked.valid_parts(ROW_GROUP_ROWS))
    writer.write_rejects(name, rejects)
    return TableReport(
        name=name,
        read=annotated.num_rows,
        valid=len(checked.valid),
        rejected=len(rejects),
        top_reasons=_top_reasons(rejects),
    )


def ingest(settings: Settings, dataset: Dataset | None = None) -> IngestReport:
    """Read, validate and snapshot every table of the dataset (default: the settings' spec);
    bad rows go to the rejects files.

    One table at a time is held, as Arrow: its valid rows stream into the snapshot folder
    before the next table is read, and nothing is published unless every table succeeds.
    """
    dataset = dataset or settings.load_dataset()
    started = time.perf_counter()
    with SnapshotWriter(settings.offline_dir, dataset.tables) as writer:
        reports = [
            _ingest_table(name, spec, settings, writer) for name, spec in dataset.tables.items()
        ]
        snapshot_id, path = writer.publish(source_description(settings))
    return IngestReport(
        snapshot_id=snapshot_id,
        snapshot_path=str(path),
        seconds=time.perf_counter() - started,
        tables=reports,
        write_seconds=writer.seconds,
    )
