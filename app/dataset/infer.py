"""Draft a `dataset.yaml` from a sample of the data: names, types, nulls, codes, ranges, the
label's coding, a table split and reason wording, each guess marked `# review` for a person.

Pure functions over a pandas frame: the caller reads the data (a flat file, a warehouse table)
and writes the text; `jobs.dataset infer` does both. The draft always loads with
app.dataset.load and accepts the rows it was drafted from, so a reviewer starts from a spec
that works and edits it towards one that is right.

This module resolves the options against the data and assembles the draft from the parts
other modules make: app.dataset.infer_columns guesses each column, app.dataset.infer_names
names it, app.dataset.infer_sections writes the sections around the columns and
app.dataset.infer_yaml renders the text with its `# review` comments. Their public helpers are
re-exported here, so drafting has one place to be imported from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from app.dataset.infer_columns import (
    CATEGORY_MAX,
    Profile,
    column_entry,
    infer_type,
    is_money,
    plain_value,
    present,
    profile_column,
    sentinels,
    widened_range,
)
from app.dataset.infer_names import Names, canonical_name, subject_of, words
from app.dataset.infer_sections import (
    FEATURE_TIMESTAMP,
    FEATURE_TTL_DAYS,
    LABEL_NAME,
    SPINE_KEY,
    SPINE_TIMESTAMP,
    WINDOW_DAYS,
    WINDOW_START,
    add_entity,
    add_features_and_reasons,
    add_flat_file,
    add_label,
    add_tables,
    header,
)
from app.dataset.infer_yaml import Draft, Flow, render
from app.errors import CreditRiskError

__all__ = [
    "CATEGORY_MAX",
    "FEATURE_TIMESTAMP",
    "FEATURE_TTL_DAYS",
    "LABEL_NAME",
    "SPINE_KEY",
    "SPINE_TIMESTAMP",
    "WINDOW_DAYS",
    "WINDOW_START",
    "Draft",
    "Flow",
    "InferError",
    "InferOptions",
    "canonical_name",
    "draft_spec",
    "infer_spec",
    "infer_type",
    "label_coding",
    "present",
    "render",
    "sentinels",
    "subject_of",
    "widened_range",
    "words",
]

# Label values read as "defaulted" / "repaid" whatever their case.
_POSITIVE = frozenset({"1", "bad", "yes", "y", "true", "t", "default", "defaulted", "delinquent"})
_NEGATIVE = frozenset({"0", "good", "no", "n", "false", "f", "repaid", "paid", "current"})


class InferError(CreditRiskError):
    """The data or the options cannot give a draft (no label column, a label with three
    values, ...)."""


@dataclass(frozen=True)
class InferOptions:
    """What the data cannot say: which column is which, and where the draft will live."""

    label: str
    entity: str
    timestamp: str | None = None
    request: tuple[str, ...] = ()
    name: str = "dataset"
    description: str = ""
    currency: str = ""
    # The flat file as the spec names it (relative to the spec's directory); None: no flat file.
    flat_file: str | None = None
    # Where the rows came from, for the header comment.
    origin: str = ""


def label_coding(values: pd.Series, column: str) -> tuple[Any, Any, str]:
    """(positive, negative, why) of a two-valued label: 1, True, `bad`, `yes` and the like
    are positive; otherwise the rarer value is (defaults are the minority)."""
    seen = present(values)
    counts = seen.value_counts()
    if len(counts) != 2:
        shown = ", ".join(repr(plain_value(v)) for v in counts.index[:10])
        raise InferError(
            f"label column {column!r} needs exactly two values (default / repaid), has "
            f"{len(counts)}: {shown or 'none'}"
        )
    first, second = (plain_value(v) for v in counts.index)
    for a, b in ((first, second), (second, first)):
        if str(a).lower() in _POSITIVE and str(b).lower() in _NEGATIVE:
            return a, b, f"{a!r} reads as a default"
    rare, common = (second, first) if counts.iloc[1] < counts.iloc[0] else (first, second)
    return rare, common, f"{rare!r} is the rarer value"


# --- the columns the options name -----------------------------------------------------


@dataclass(frozen=True)
class _Sources:
    """The frame's columns the options name; entity and timestamp None when not in it."""

    label: str
    timestamp: str | None
    entity: str | None
    request: list[str]

    @property
    def special(self) -> set[str]:
        """Columns that become keys, times or the label rather than spec columns."""
        return {self.label, self.timestamp, self.entity} - {None}


def _resolve(frame: pd.DataFrame, wanted: str, what: str) -> str:
    """The frame's column for a name given on the command line: as written, as its canonical
    name, or ignoring case (a warehouse upper-cases unquoted names)."""
    columns = [str(c) for c in frame.columns]
    for match in (
        lambda c: c == wanted,
        lambda c: canonical_name(c) == canonical_name(wanted),
        lambda c: c.lower() == wanted.lower(),
    ):
        found = [c for c in columns if match(c)]
        if len(found) == 1:
            return found[0]
    shown = ", ".join(columns[:30]) + (" ..." if len(columns) > 30 else "")
    raise InferError(f"{what} column {wanted!r} is not in the data (columns: {shown})")


def _check_times(values: pd.Series, column: str) -> None:
    """Application times must parse as ingest parses them (app.data.warehouse), or every
    application would be rejected for a missing time."""
    seen = present(values)
    stamps = pd.to_datetime(seen, utc=True, errors="coerce")
    bad = seen[stamps.isna()]
    if len(bad):
        raise InferError(
            f"timestamp column {column!r}: {len(bad):,} of {len(seen):,} values are not times "
            f"(e.g. {bad.iloc[0]!r})"
        )


def _entity_source(frame: pd.DataFrame, entity: str) -> str | None:
    """The entity's id column, if the data has one (else ingest assigns ids by row)."""
    in_data = [c for c in frame.columns if c == entity]
    if not in_data:
        in_data = [c for c in frame.columns if canonical_name(c) == canonical_name(entity)]
    return in_data[0] if in_data else None


def _find_sources(frame: pd.DataFrame, options: InferOptions) -> _Sources:
    label = _resolve(frame, options.label, "label")
    timestamp = _resolve(frame, options.timestamp, "timestamp") if options.timestamp else None
    if timestamp:
        _check_times(frame[timestamp], timestamp)
    entity = _entity_source(frame, options.entity)
    request = [_resolve(frame, r, "request") for r in options.request]
    sources = _Sources(label, timestamp, entity, request)
    clash = [r for r in request if r in sources.special]
    if clash:
        raise InferError(f"request field(s) {clash} are the label, entity or timestamp column")
    return sources


# --- the draft ------------------------------------------------------------------------


def _add_opening(draft: Draft, options: InferOptions, profiles: list[Profile]) -> None:
    """The spec's first fields: its version, name, description and currency."""
    spec = draft.spec
    spec["spec_version"] = 1
    spec["name"] = options.name
    spec["version"] = 1
    spec["description"] = options.description
    spec["currency"] = options.currency
    if not options.currency and any(is_money(p) for p in profiles):
        draft.note(("currency",), "money columns found: name the currency and mark them")


def draft_spec(frame: pd.DataFrame, options: InferOptions) -> Draft:
    """The draft spec of a data sample (every row a decision with its outcome)."""
    if frame.empty:
        raise InferError("the data has no rows to draft a spec from")
    frame = frame.rename(columns=str)
    sources = _find_sources(frame, options)
    entity_key = canonical_name(options.entity)
    spine_timestamp = canonical_name(sources.timestamp) if sources.timestamp else SPINE_TIMESTAMP
    spine_key = SPINE_KEY if entity_key != SPINE_KEY else "row_id"
    names = Names({entity_key, spine_key, spine_timestamp, FEATURE_TIMESTAMP, LABEL_NAME})
    profiles = [
        profile_column(frame, source, names.take(source))
        for source in frame.columns
        if source not in sources.special
    ]
    coding = label_coding(frame[sources.label], sources.label)

    # The sections are added in the order the spec is written.
    draft = Draft(spec={})
    _add_opening(draft, options, profiles)
    entity_name = add_entity(draft, entity_key, sources.entity)
    draft.spec["columns"] = {p.name: column_entry(p, draft, options.currency) for p in profiles}
    add_label(draft, frame[sources.label], sources.label, coding)
    by_source = {p.source: p for p in profiles}
    request = [by_source[r].name for r in sources.request]
    # Ids, free text and times are in no table: they are not model inputs.
    tabled = [p.name for p in profiles if p.type not in ("string", "timestamp")]
    features = [c for c in tabled if c not in request]
    add_tables(draft, entity_name, spine_key, spine_timestamp, request, features)
    if options.flat_file is not None:
        add_flat_file(draft, options.flat_file, sources.entity, sources.timestamp)
    add_features_and_reasons(draft, request, features, profiles, options.currency)
    draft.header = header(len(frame), options.origin)
    return draft


def infer_spec(read: Callable[[], pd.DataFrame], options: InferOptions) -> str:
    """The draft `dataset.yaml` text of the rows `read` returns."""
    return render(draft_spec(read(), options))
