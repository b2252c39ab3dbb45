"""The request path's online-feature read: one round trip per batch, in Feast's own layout.

Feast stays the source of truth: it defines the views and materializes them; this module only
reads what it wrote, with Feast's own key serialisation and field hashing (pinned by the lock
file, checked at start against `get_online_features`: `verify_layout`). It saves Feast's
generic response assembly (FeatureVectors, `to_dict`), which costs more than the read itself.

- Redis: both views of an applicant live in one hash (key = serialised entity key + project,
  field = murmur3 of "view:feature", "_ts:view" the view's event time), so a batch is one
  pipelined HMGET per applicant of every field: one round trip.
- SQLite: one table per view; a batch is one SELECT over both tables.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from feast import FeatureStore
from feast.infra.online_stores.helpers import _mmh3

from app.config import Settings
from app.dataset import Dataset
from app.errors import FeatureStoreError
from app.features.layout import (
    Fetched,
    Unreadable,
    applicant_of,
    decode_seconds,
    decode_value,
    entity_key,
    glob_escape,
    sqlite_seconds,
    value_kind,
    verify_layout,
)

# Every online-store call's limit: scoring runs on the replica's event loop by default, so a
# store that stops answering holds requests up to this long before they get 503.
TIMEOUT_SECONDS = 1.0


@dataclass
class OnlineRows:
    """Stored features for a list of applicants, position i answering applicant i."""

    columns: dict[str, list]  # feature -> values (None where missing)
    known: np.ndarray  # False where the store holds nothing usable for the applicant
    as_of: list[datetime | None]  # event time of the oldest stored view used, per row
    # Why, where the store holds a record that cannot be decoded or a value of another type
    # than the view declares: that applicant alone cannot be answered (known is False there).
    unreadable: list[str | None] | None = None

    def __post_init__(self) -> None:
        if self.unreadable is None:
            self.unreadable = [None] * len(self.known)


@dataclass(frozen=True)
class View:
    name: str  # the name Feast stores it under
    features: tuple[str, ...]
    # The `Value` field each feature's dtype is stored in ("int64_val", ...); None: unchecked.
    kinds: tuple[str | None, ...] | None = None


class OnlineReader:
    """Reads a FeatureService's stored views; subclasses do the store-specific round trip."""

    def __init__(self, views: Sequence[View], key_version: int, dataset: Dataset) -> None:
        self.views = tuple(views)
        # The spec the views were built from: its entity key and derived features.
        self.dataset = dataset
        self.key_version = key_version
        self.stored = tuple(f for view in self.views for f in view.features)
        self.kinds: dict[str, str | None] = {}
        for view in self.views:
            kinds = view.kinds or (None,) * len(view.features)
            self.kinds.update(zip(view.features, kinds, strict=True))

    def read(self, entity_ids: Sequence[str]) -> OnlineRows:
        """Stored features of each applicant (duplicates are read once)."""
        unique = list(dict.fromkeys(entity_ids))
        fetched = self._fetch(unique) if unique else {}
        n = len(entity_ids)
        columns: dict[str, list] = {f: [None] * n for f in self.stored}
        known = np.zeros(n, dtype=bool)
        unreadable: list[str | None] = [None] * n
        as_of: list[datetime | None] = [None] * n
        for i, entity_id in enumerate(entity_ids):
            found = fetched.get(entity_id)
            if found is None:
                continue
            if isinstance(found, Unreadable):
                unreadable[i] = str(found)
                continue
            values, stamps = found
            known[i] = True
            as_of[i] = datetime.fromtimestamp(min(stamps), tz=UTC)
            for feature, value in values.items():
                columns[feature][i] = value
        return OnlineRows(columns, known, as_of, unreadable)

    def _fetch(self, entity_ids: list[str]) -> dict[str, Fetched]:
        """applicant id -> (feature -> value, event seconds of each view present), or the
        Unreadable error of an applicant whose record cannot be decoded; absent: unknown."""
        raise NotImplementedError

    def _decode(self, raw: dict[str, bytes | None]) -> dict[str, Any]:
        return {f: decode_value(value, self.kinds.get(f)) for f, value in raw.items()}

    def sample_id(self) -> str | None:
        """Some applicant the store holds (None if none): the layout check's sentinel."""
        raise NotImplementedError

    def probe(self) -> None:
        """One real round trip (an id that cannot exist): raises if the store does not answer."""
        self._fetch(["__readyz__"])

    def close(self) -> None:
        """Release the connection."""


class RedisOnlineReader(OnlineReader):
    def __init__(
        self, views: Sequence[View], key_version: int, dataset: Dataset, project: str, client
    ) -> None:
        super().__init__(views, key_version, dataset)
        self.project = project.encode()
        self.client = client
        self.fields = [_mmh3(f"{v.name}:{f}") for v in self.views for f in v.features]
        self.fields += [f"_ts:{v.name}".encode() for v in self.views]

    def _fetch(self, entity_ids: list[str]) -> dict[str, Fetched]:
        with self.client.pipeline(transaction=False) as pipe:
            for entity_id in entity_ids:
                pipe.hmget(
                    entity_key(entity_id, self.key_version, self.dataset.entity_key) + self.project,
                    self.fields,
                )
            replies = pipe.execute()
        n_features = len(self.stored)
        out: dict[str, Fetched] = {}
        for entity_id, reply in zip(entity_ids, replies, strict=True):
            try:
                stamps = [decode_seconds(t) for t in reply[n_features:] if t]
                if stamps:
                    raw = dict(zip(self.stored, reply, strict=False))
                    out[entity_id] = (self._decode(raw), stamps)
            except Unreadable as exc:
                out[entity_id] = exc
        return out

    def sample_id(self) -> str | None:
        # A bounded SCAN for any key of this project (keys end with the project's name).
        pattern = b"*" + glob_escape(self.project)
        cursor = 0
        for _ in range(20):
            cursor, keys = self.client.scan(cursor, match=pattern, count=500)
            if keys:
                return applicant_of(keys[0][: -len(self.project)], self.key_version)
            if cursor == 0:
                break
        return None

    def close(self) -> None:
        self.client.close()


class SqliteOnlineReader(OnlineReader):
    def __init__(
        self,
        views: Sequence[View],
        key_version: int,
        dataset: Dataset,
        path: str,
        tables: list[str],
    ):
        super().__init__(views, key_version, dataset)
        # The scoring thread is the only user; Feast's writer commits whole transactions.
        self.connection = sqlite3.connect(
            path, timeout=TIMEOUT_SECONDS, check_same_thread=False, isolation_level=None
        )
        self.tables = tables
        # One connection: readiness probes and scoring may come from different threads.
        self._lock = threading.Lock()

    def _fetch(self, entity_ids: list[str]) -> dict[str, Fetched]:
        join_key = self.dataset.entity_key
        keys = {entity_key(a, self.key_version, join_key): a for a in entity_ids}
        marks = ",".join("?" * len(keys))
        sql = " UNION ALL ".join(
            f'SELECT entity_key, {i}, feature_name, value, event_ts FROM "{table}" '
            f"WHERE entity_key IN ({marks})"
            for i, table in enumerate(self.tables)
        )
        with self._lock:
            rows = self.connection.execute(sql, list(keys) * len(self.tables)).fetchall()
        found: dict[str, tuple[dict[str, bytes | None], dict[int, Any]]] = {}
        for key, view, feature, raw, event_ts in rows:
            values, stamps = found.setdefault(keys[key], ({}, {}))
            values[feature] = raw
            stamps[view] = event_ts
        out: dict[str, Fetched] = {}
        for entity_id, (raw, stamps) in found.items():
            try:
                seconds = [sqlite_seconds(t) for t in stamps.values()]
                out[entity_id] = (self._decode(raw), seconds)
            except Unreadable as exc:
                out[entity_id] = exc
        return out

    def sample_id(self) -> str | None:
        try:
            with self._lock:
                row = self.connection.execute(
                    f'SELECT entity_key FROM "{self.tables[0]}" LIMIT 1'
                ).fetchone()
        except sqlite3.OperationalError as exc:
            raise FeatureStoreError(
                f"the SQLite online store has no table {self.tables[0]!r} ({exc}): "
                "run `python -m jobs.materialize`"
            ) from None
        return None if row is None else applicant_of(row[0], self.key_version)

    def close(self) -> None:
        self.connection.close()


def service_views(store: FeatureStore, feature_service_name: str) -> list[View]:
    """The stored (materialized) views of a FeatureService, in the service's order."""
    service = store.get_feature_service(feature_service_name)
    stored = {view.name: view for view in store.list_feature_views()}
    return [
        View(
            p.name,
            tuple(f.name for f in p.features),
            tuple(value_kind(f.dtype) for f in p.features),
        )
        for p in service.feature_view_projections
        if p.name in stored
    ]


def open_reader(settings: Settings, store: FeatureStore | None = None) -> OnlineReader:
    """A reader of the online store the settings name, its layout checked against Feast."""
    from app.features.store import get_store

    store = store or get_store(settings)
    config = store.config
    views = service_views(store, settings.feature_service_name)
    if settings.online_store == "redis":
        from app.connections import redis_client

        reader: OnlineReader = RedisOnlineReader(
            views,
            config.entity_key_serialization_version,
            settings.load_dataset(),
            config.project,
            # One attempt: a refused connection fails the batch at once (503, Retry-After)
            # instead of holding the replica's loop through redis-py's retries.
            redis_client(settings, TIMEOUT_SECONDS, retry=False),
        )
    else:
        from feast.infra.online_stores.sqlite import _table_id

        versioned = config.registry.enable_online_feature_view_versioning
        by_name = {v.name: v for v in store.list_feature_views()}
        tables = [_table_id(config.project, by_name[v.name], versioned) for v in views]
        reader = SqliteOnlineReader(
            views,
            config.entity_key_serialization_version,
            settings.load_dataset(),
            config.online_store.path,
            tables,
        )
    try:
        verify_layout(reader, store, settings.feature_service_name)
    except Exception:
        reader.close()
        raise
    return reader


def model_inputs(
    rows: OnlineRows, request_columns: dict[str, list], dataset: Dataset
) -> dict[str, list]:
    """Every raw model column for a batch: stored features, the request's own fields and the
    derived features computed from them (as Feast's on-demand view computes them)."""
    return dataset.with_derived({**rows.columns, **request_columns})
