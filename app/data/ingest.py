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
from app.data.snapshot import write_snapshot
from app.data.sources import read_table
from app.data.validation import REASON, annotate_batch, flag_duplicates, split_valid
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


def read_and_validate(spec: TableSpec, settings: Settings) -> pd.DataFrame:
    """The table's rows, typed, each with a reject reason or none (duplicates not yet flagged)."""
    try:
        ds = read_table(spec, settings).map_batches(
            annotate_batch, fn_kwargs={"spec": spec}, batch_format="pandas"
        )
        tables = ray.get(ds.to_arrow_refs())
    except CreditRiskError:
        raise
    except Exception as exc:  # Ray re-raises task errors wrapped; unwrap for the message.
        root = _root_cause(exc)
        if isinstance(root, CreditRiskError):
            raise root from None
        raise SourceError(f"reading table {spec.name!r} failed: {root}") from None
    if not tables:
        return pd.DataFrame()
    return pa.concat_tables(tables).to_pandas()


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


def ingest(settings: Settings, dataset: Dataset | None = None) -> IngestReport:
    """Read, validate and snapshot every table of the dataset (default: the settings' spec);
    bad rows go to the rejects files."""
    dataset = dataset or settings.load_dataset()
    started = time.perf_counter()
    valid: dict[str, pd.DataFrame] = {}
    rejects: dict[str, pd.DataFrame] = {}
    reports: list[TableReport] = []
    for name, spec in dataset.tables.items():
        annotated = read_and_validate(spec, settings)
        if annotated.empty:
            raise SourceError(f"table {name!r} in the {settings.source} source has no rows")
        annotated = flag_duplicates(annotated, spec)
        valid[name], rejects[name] = split_valid(annotated, spec)
        reports.append(
            TableReport(
                name=name,
                read=len(annotated),
                valid=len(valid[name]),
                rejected=int(annotated[REASON].notna().sum()),
                top_reasons=_top_reasons(rejects[name]),
            )
        )
        if valid[name].empty:
            raise SourceError(
                f"table {name!r}: all {len(annotated)} rows were rejected; "
                f"first reason: {rejects[name]['reason'].iloc[0]}"
            )
    writing = time.perf_counter()
    snapshot_id, path = write_snapshot(
        settings.offline_dir, valid, rejects, source_description(settings), dataset.tables
    )
    ended = time.perf_counter()
    return IngestReport(
        snapshot_id=snapshot_id,
        snapshot_path=str(path),
        seconds=ended - started,
        tables=reports,
        write_seconds=ended - writing,
    )
