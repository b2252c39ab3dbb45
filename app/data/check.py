"""Check data against a dataset spec without ingesting it: the flat rows split into the spec's
tables as `jobs.seed` splits them, each table validated as ingest validates it, and a report of
what was accepted, what was rejected and why. No Ray: the rows must fit in memory."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from app.data.ingest_table import validate_frame
from app.data.snowflake import match_names
from app.data.warehouse import assign_ids_and_times, joined_rows
from app.dataset import Dataset
from app.errors import SourceError

# A reject reason names the value ("age=150 outside [18, 100]"); its kind leaves it out so
# rows failing the same way count together.
_VALUED = re.compile(r"^(?P<column>\S+?)=(?P<value>.*?) (?P<rest>is not|is neither|outside)")
_DUPLICATE = re.compile(r"^duplicate key (?P<column>[^=]+)=")


@dataclass(frozen=True)
class TableCheck:
    name: str
    role: str
    read: int
    accepted: int
    # (kind, rows, an example value) of the commonest reasons, commonest first
    reasons: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return self.read - self.accepted

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.read if self.read else 0.0


@dataclass(frozen=True)
class DataCheck:
    rows: int
    tables: list[TableCheck]
    label_rate: float | None  # share of accepted applications that defaulted
    derived_missing: dict[str, float]  # share of accepted applications without a value


def reason_kind(reason: str) -> tuple[str, str]:
    """(kind, example) of one reject reason: `x=150 outside [0, 99]` -> (`x outside [0, 99]`,
    `150`)."""
    valued = _VALUED.match(reason)
    if valued:
        kind = f"{valued['column']} {reason[valued.start('rest') :]}"
        return kind, valued["value"]
    duplicate = _DUPLICATE.match(reason)
    if duplicate:
        return f"duplicate key {duplicate['column']}", reason[duplicate.end() :]
    return reason, ""


def top_reasons(reasons: pd.Series, limit: int = 5) -> list[tuple[str, int, str]]:
    """The commonest kinds of problem over rejected rows (a row may have several), each with
    how many rows have it and one value that caused it."""
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for joined in reasons.dropna():
        for reason in dict.fromkeys(joined.split("; ")):
            kind, example = reason_kind(reason)
            counts[kind] += 1
            examples.setdefault(kind, example)
    return [(kind, n, examples[kind]) for kind, n in counts.most_common(limit)]


def conform_columns(raw: pd.DataFrame, dataset: Dataset, where: str) -> pd.DataFrame:
    """A flat table read from a warehouse under the spec's source names (a warehouse may have
    upper-cased them), checked to hold every column the spec reads."""
    flat = dataset.spec.sources.flat_file
    needed = [*dataset.raw_columns]
    if flat is not None:
        needed += [c for c in (flat.entity_source, flat.timestamp_source) if c]
    actual = match_names(needed, [str(c) for c in raw.columns])
    missing = [c for c in needed if c not in actual]
    if missing:
        raise SourceError(f"{where} lacks columns: {', '.join(missing)}")
    return raw.rename(columns={v: k for k, v in actual.items() if k != v})


def check_data(raw: pd.DataFrame, dataset: Dataset, seed: int = 42) -> DataCheck:
    """Split flat rows into the spec's tables and validate each (ids and event times are made
    up where the rows have none, seeded as `jobs.seed` makes them)."""
    rows, stamps = assign_ids_and_times(raw, dataset, seed=seed)
    tables: list[TableCheck] = []
    valid: dict[str, pd.DataFrame] = {}
    for name, spec in dataset.tables.items():
        # The rows as the file holds them, not cast like app.data.warehouse.split_tables casts
        # them for Parquet: a bad value is for validation to reject, not for a cast to crash on.
        frame = rows.assign(**{spec.source_of(spec.timestamp): stamps[name]})[spec.source_columns]
        valid[name], rejects = validate_frame(frame, spec)
        role = "spine" if name == dataset.spine.name else "features"
        reasons = top_reasons(rejects["reason"]) if len(rejects) else []
        tables.append(TableCheck(name, role, len(frame), len(valid[name]), reasons))
    joined = joined_rows(valid, dataset)
    label = pd.to_numeric(joined[dataset.label], errors="coerce")
    label_rate = float(label.mean()) if label.notna().any() else None
    missing = {
        name: float(joined[name].isna().mean()) if len(joined) else 0.0
        for name in dataset.derived_names
    }
    return DataCheck(len(raw), tables, label_rate, missing)
