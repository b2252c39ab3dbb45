"""Prediction-log retention: delete whole days past the retention period, and record it.

The log holds personal data (applicant ids and the raw features of every application), so it
is kept only as long as `prediction_log_retention_days`, and never less than
`prediction_log_retention_min_days` (a shorter `days` is refused). Days are the `date=YYYY-MM-DD`
partitions (the UTC day a decision was logged); a day is deleted once it is more than `days`
days before today (UTC), parts that cannot be read included (counted, their rows unknown).
Journal segments compaction set aside (`_journal/*.jsonl.bad`) go too once all their records
are that old (by their `logged_at`; by the file's mtime for records without a readable one).
Each deletion is appended to `<log>/_retention.jsonl` (fsynced) as soon as it is done, one line
per day or segment with the run's time, so a run that stops midway has recorded all it removed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from app.errors import CreditRiskError
from app.predictions.journal import BAD, JOURNAL_DIR, SUFFIX, decode_lines
from app.predictions.log import compact_prediction_log

RECORD_FILE = "_retention.jsonl"  # a leading `_`: Parquet readers skip it
MIN_DAYS_SETTING = "CREDIT_PREDICTION_LOG_RETENTION_MIN_DAYS"


class RetentionError(CreditRiskError):
    """A retention run that cannot do what it was asked."""


@dataclass
class Retention:
    time: str
    days: int
    cutoff: str  # days before this one were removed
    dry_run: bool
    partitions: list[str] = field(default_factory=list)
    rows: int = 0  # of the readable parts
    files: int = 0
    unreadable_files: int = 0  # parts whose row count could not be read (deleted all the same)
    bad_segments: list[str] = field(default_factory=list)  # set-aside journal segments
    bad_rows: int = 0  # their lines

    def add(self, step: Retention) -> None:
        self.partitions += step.partitions
        self.rows += step.rows
        self.files += step.files
        self.unreadable_files += step.unreadable_files
        self.bad_segments += step.bad_segments
        self.bad_rows += step.bad_rows

    def step(self, **figures: Any) -> Retention:
        """This run's record for one deletion."""
        return Retention(self.time, self.days, self.cutoff, self.dry_run, **figures)

    def line(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        span = f" ({self.partitions[0]} .. {self.partitions[-1]})" if self.partitions else ""
        return (
            f"retention {self.days} d: {verb} {len(self.partitions)} day(s){span}, "
            f"{self.rows} records in {self.files} files ({self.unreadable_files} unreadable), "
            f"{len(self.bad_segments)} .bad journal segment(s) ({self.bad_rows} records); "
            f"kept days from {self.cutoff}"
        )


def _day(folder: Path) -> date | None:
    try:
        return date.fromisoformat(folder.name.removeprefix("date="))
    except ValueError:
        return None  # not a partition this log wrote: never touch it


def apply_retention(
    directory: Path,
    days: int,
    now: datetime | None = None,
    dry_run: bool = False,
    *,
    min_days: int,
    schema: pa.Schema,
) -> Retention:
    """Delete the partitions and set-aside segments older than `days` days; returns (and
    records) what went. `min_days`: the floor below which `days` is refused; `schema`: the
    log's, for filing a killed replica's journal first."""
    if days < 0:
        raise RetentionError(f"--days must be >= 0, not {days}")
    if days < min_days:
        raise RetentionError(
            f"--days {days} is below the retention floor of {min_days} days ({MIN_DAYS_SETTING}):"
            " nothing deleted"
        )
    directory = Path(directory)
    now = now or datetime.now(UTC)
    cutoff = now.astimezone(UTC).date() - timedelta(days=days)
    done = Retention(now.isoformat(), days, cutoff.isoformat(), dry_run)
    if not directory.is_dir():
        return done
    try:
        if not dry_run:  # a killed replica's journal may still hold old records: file them
            compact_prediction_log(directory, schema)
    except (OSError, pa.ArrowException) as exc:
        raise RetentionError(
            f"retention stopped in {directory}: compacting the journal failed ({exc}); "
            "nothing deleted"
        ) from None
    try:
        for folder in sorted(directory.glob("date=*")):
            day = _day(folder)
            if day is None or day >= cutoff or not folder.is_dir():
                continue
            _remove(directory, folder, _measure_day(done, folder), done)
        for segment in sorted((directory / JOURNAL_DIR).glob(f"*{SUFFIX}{BAD}")):
            newest, lines = _bad_segment_age(segment)
            if newest is None or newest >= cutoff:
                continue
            step = done.step(bad_segments=[segment.name], bad_rows=lines)
            _remove(directory, segment, step, done)
    except OSError as exc:
        where = f"; the {RECORD_FILE} lines of this run say what went" if not dry_run else ""
        raise RetentionError(f"retention stopped in {directory}: {exc}{where}") from None
    return done


def _measure_day(done: Retention, folder: Path) -> Retention:
    parts = [p for p in folder.iterdir() if p.suffix == ".parquet"]
    step = done.step(partitions=[folder.name], files=len(parts))
    for part in parts:
        try:
            step.rows += pq.read_metadata(part).num_rows
        except (OSError, pa.ArrowException):  # empty, truncated, not Parquet: it goes anyway
            step.unreadable_files += 1
    return step


def _bad_segment_age(segment: Path) -> tuple[date | None, int]:
    """The UTC day of a set-aside segment's newest record (None: gone) and its line count."""
    try:
        written = datetime.fromtimestamp(segment.stat().st_mtime, UTC).date()
    except FileNotFoundError:
        return None, 0
    try:
        rows, garbled = decode_lines(segment.read_bytes())
    except OSError:
        return written, 0
    stamps = [_logged_day(row.get("logged_at")) for row in rows]
    known = [d for d in stamps if d is not None]
    if garbled or not rows or len(known) < len(stamps):
        known.append(written)  # records of unknown age: no older than the file's last write
    return max(known), len(rows) + garbled


def _logged_day(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    # The log's reader takes a stamp without an offset as UTC (Arrow's cast): so does this.
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).astimezone(UTC).date()


def _remove(directory: Path, path: Path, step: Retention, done: Retention) -> None:
    """Delete a day or a segment and record it at once (a dry run only counts it)."""
    if not done.dry_run:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        try:
            _record(directory / RECORD_FILE, step)
        except OSError as exc:
            raise RetentionError(
                f"retention stopped in {directory}: {path.name} was deleted but could not be "
                f"recorded in {RECORD_FILE} ({exc})"
            ) from None
    done.add(step)


def _record(path: Path, step: Retention) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(step)) + "\n")
        f.flush()
        os.fsync(f.fileno())
