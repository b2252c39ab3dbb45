"""The sections of a drafted spec around its columns: the entity, the label, a table split,
the flat file, features and reason codes, and the header comment. Part of drafting
(app.dataset.infer), which decides what goes in and calls these in the spec's order."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from app.dataset.infer_columns import Profile, present, reason_entry
from app.dataset.infer_yaml import Draft
from app.dataset.types import CANONICAL

_CANONICAL = re.compile(CANONICAL)

LABEL_NAME = "is_default"
SPINE_KEY = "application_id"
SPINE_TIMESTAMP = "application_timestamp"
FEATURE_TIMESTAMP = "event_timestamp"
FEATURE_TTL_DAYS = 365
# Flat files have no event time: ingest stamps each row inside this window (FlatFile defaults).
WINDOW_START = "2024-01-01"
WINDOW_DAYS = 730


def _entity_name(key: str) -> str:
    base = re.sub(r"_(id|key|no|number)$", "", key)
    return base if base and base != key and _CANONICAL.match(base) else "entity"


def add_entity(draft: Draft, key: str, source: str | None) -> str:
    """`entity`, its ids from column `source` (None: assigned by row); returns its name."""
    name = _entity_name(key)
    draft.spec["entity"] = {"name": name, "key": key}
    draft.note(
        ("entity", "key"),
        f"ids from column {source!r}"
        if source
        else "the data has no such column: ids are assigned by row at ingest",
    )
    return name


def add_label(draft: Draft, values: pd.Series, source: str, coding: tuple[Any, Any, str]) -> None:
    """`label` from column `source`, coded (positive, negative, why) by label_coding."""
    positive, negative, why = coding
    label: dict[str, Any] = {"name": LABEL_NAME}
    draft.spec["label"] = label
    if source != LABEL_NAME:
        label["source"] = source
    label["positive"] = positive
    label["negative"] = negative
    draft.note(("label", "positive"), f"{why}: it must mean default")
    missing = int(len(values) - len(present(values)))
    if missing:
        draft.note(("label", "name"), f"{missing:,} rows have no label: check rejects them")


def add_tables(
    draft: Draft,
    entity_name: str,
    spine_key: str,
    spine_timestamp: str,
    request: list[str],
    features: list[str],
) -> None:
    """`sources.tables`: a spine of applications and, if any column is left, one feature
    table about the entity."""
    tables: dict[str, Any] = {}
    tables["applications"] = {
        "role": "spine",
        "key": spine_key,
        "timestamp": spine_timestamp,
        "description": "One row per application: its outcome"
        + (" and the fields the caller sends." if request else "."),
        "columns": [*request, LABEL_NAME],
    }
    if features:
        profile_table = f"{entity_name}_profile"
        tables[profile_table] = {
            "timestamp": FEATURE_TIMESTAMP,
            "ttl_days": FEATURE_TTL_DAYS,
            "description": f"What is known about the {entity_name.replace('_', ' ')}.",
            "columns": features,
        }
        draft.note(
            ("sources", "tables", profile_table, "ttl_days"),
            "how long a row stays valid; split the columns by how often they change",
        )
    draft.spec["sources"] = {"tables": tables}


def add_flat_file(
    draft: Draft, path: str, entity_source: str | None, timestamp_source: str | None
) -> None:
    """`sources.flat_file`: where the rows are and which of their columns give ids and times
    (call after add_tables)."""
    flat: dict[str, Any] = {"path": path}
    if entity_source:
        flat["entity_source"] = entity_source
    if timestamp_source:
        flat["timestamp_source"] = timestamp_source
    else:
        flat["window_start"] = WINDOW_START
        flat["window_days"] = WINDOW_DAYS
        draft.note(
            ("sources", "flat_file", "window_start"),
            "the file has no event time: ingest stamps its rows in this window",
        )
    draft.spec["sources"]["flat_file"] = flat


def add_features_and_reasons(
    draft: Draft, request: list[str], features: list[str], profiles: list[Profile], currency: str
) -> None:
    """`features` (the request fields, nothing derived) and a reason code per model input."""
    draft.spec["features"] = {"request": request, "derived": [], "exclude": []}
    if not request:
        draft.note(("features", "request"), "none: the request body is the entity id alone")
    model = [*request, *features]
    by_name = {p.name: p for p in profiles}
    codes = {
        name: reason_entry(by_name[name], f"R{i:02d}", currency)
        for i, name in enumerate(model, start=1)
    }
    draft.spec["reasons"] = {"codes": codes}
    for name in model:
        draft.note(("reasons", "codes", name), "wording drafted from the name")


def header(rows: int, origin: str) -> list[str]:
    """The comment atop the draft: where it came from and what a reviewer does next."""
    came_from = f" from {origin}" if origin else ""
    return [
        f"Drafted by `python -m jobs.dataset infer`{came_from} ({rows:,} rows).",
        "Every `# review` comment is a guess about the data: settle it, then delete it.",
        'Reference of every field: README, "Bring your own data". Check the result with',
        "`python -m jobs.dataset check <this directory>`.",
    ]
