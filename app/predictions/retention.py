"""Prediction-log retention: delete whole days past the retention period, and record it.

The log holds personal data (applicant ids and the raw features of every application), so it
is kept only as long as `prediction_log_retention_days`. Days are the `date=YYYY-MM-DD`
partitions (the UTC day a decision was logged); a day is deleted once it is more than `days`
days before today (UTC). What was removed is appended to `<log>/_retention.jsonl`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from app.errors import CreditRiskError
from app.predictions.log import compact_prediction_log

RECORD_FILE = "_retention.jsonl"  # a leading `_`: Parquet readers skip it


class RetentionError(CreditRiskError):
    """A retention run that cannot do what it was asked."""


@dataclass
class Retention:
    time: str
    days: int
    cutoff: str  # days before this one were removed
    dry_run: bool
    partitions: list[str] = field(default_factory=list)
    rows: int = 0
    files: int = 0

    def line(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        span = f" ({self.partitions[0]} .. {self.partitions[-1]})" if self.partitions else ""
        return (
            f"retention {self.days} d: {verb} {len(self.partitions)} day(s){span}, "
            f"{self.rows} records in {self.files} files; kept days from {self.cutoff}"
        )


def _day(folder: Path) -> date | None:
    try:
        return date.fromisoformat(folder.name.removeprefix("date="))
    except ValueError:
        return None  # not a partition this log wrote: never touch it


def apply_retention(
    directory: Path, days: int, now: datetime | None = None, dry_run: bool = False
) -> Retention:
    """Delete the partitions older than `days` days; returns (and records) what went."""
    if days < 0:
        raise RetentionError(f"--days must be >= 0, not {days}")
    directory = Path(directory)
    now = now or datetime.now(UTC)
    cutoff = now.astimezone(UTC).date() - timedelta(days=days)
    done = Retention(now.isoformat(), days, cutoff.isoformat(), dry_run)
    if not directory.is_dir():
        return done
    try:
        if not dry_run:  # a killed replica's journal may still hold old records: file them
            compact_prediction_log(directory)
        for folder in sorted(directory.glob("date=*")):
            day = _day(folder)
            if day is None or day >= cutoff or not folder.is_dir():
                continue
            parts = [p for p in folder.iterdir() if p.suffix == ".parquet"]
            done.partitions.append(folder.name)
            done.files += len(parts)
            done.rows += sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
            if not dry_run:
                shutil.rmtree(folder)
    except OSError as exc:
        if done.partitions and not dry_run:
            _record(directory / RECORD_FILE, done)  # what went before the failure
        raise RetentionError(f"retention stopped in {directory}: {exc}") from None
    if not dry_run and done.partitions:
        _record(directory / RECORD_FILE, done)
    return done


def _record(path: Path, done: Retention) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(done)) + "\n")
        f.flush()
        os.fsync(f.fileno())
