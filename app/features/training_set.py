"""The training set's point-in-time join, run by DuckDB over the snapshot's Parquet files.

The frame is `get_training_frame`'s (app/features/store.py): every application, its features as
of its own time, the derived features, sorted by the spine key. Feast's file offline store
pairs every application with every feature row of its entity in pandas before filtering (about
50 s and over 2 GiB for a million applications on two cores); an ASOF join picks the one row.

The views are read from the dataset spec exactly as app/features/definitions.py builds the
Feast views from it (one per feature table: entity join key, event time, TTL, features), and the
derived features are computed by the same `derive_frame` as the on-demand view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from app.config import Settings
from app.data.snapshot import load_snapshot, table_path
from app.dataset import Dataset
from app.errors import FeatureStoreError

EVENT_TIME = "event_timestamp"  # the entity frame's time column, as Feast names it
_ROW = "__row"
_TIME = "__event_time"


@dataclass(frozen=True)
class ViewSource:
    """One feature view as the join needs it: where its rows are and how they are keyed."""

    name: str
    path: Path
    timestamp: str
    features: tuple[str, ...]
    # None: no TTL (Feast's ttl of 0), any earlier row counts however old.
    ttl: timedelta | None


def view_sources(dataset: Dataset, offline_dir: Path) -> list[ViewSource]:
    """The feature views of `build_definitions`, in the feature service's order."""
    return [
        ViewSource(
            name=table.name,
            # The snapshot folder itself, not the `current` link: both reads of the file (the
            # join, then the values by row number) must see the same one while an ingest
            # publishes another.
            path=table_path(offline_dir, table.name).resolve(),
            timestamp=table.timestamp,
            features=tuple(c for c in table.feature_columns if c != dataset.entity_key),
            ttl=timedelta(days=days) if (days := dataset.ttl_days(table.name)) else None,
        )
        for table in dataset.feature_tables
    ]


def training_entities(applications_df: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """The entity frame Feast joins on: one row per application (spine row), at its time."""
    spine = dataset.spine
    entity_df = applications_df.rename(columns={spine.timestamp: EVENT_TIME}).copy()
    keep = [spine.key, dataset.entity_key, EVENT_TIME, *dataset.request_columns]
    extra = [c for c in entity_df.columns if c not in keep]
    return entity_df[keep + extra]


def training_frame(settings: Settings, applications_df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features as of each application's time (never later values), one row per application,
    sorted by the spine key: `get_training_frame`'s frame without going through Feast."""
    dataset = settings.load_dataset()
    if applications_df is None:
        applications_df = load_snapshot(settings.offline_dir, dataset.spine.name)
    entity_df = training_entities(applications_df, dataset)
    return point_in_time_frame(
        entity_df,
        key=dataset.spine.key,
        entity_key=dataset.entity_key,
        views=view_sources(dataset, settings.offline_dir),
        derive=dataset.derive_frame,
    )


def point_in_time_frame(
    entity_df: pd.DataFrame,
    *,
    key: str,
    entity_key: str,
    views: Sequence[ViewSource],
    derive: Callable[[pd.DataFrame], pd.DataFrame],
) -> pd.DataFrame:
    """`entity_df` (one row per `key`, its time in `event_timestamp`) with, per view, the
    features of the entity's latest row at or before that time and within the view's TTL
    (missing when there is none), then `derive`'s columns; sorted by `key`."""
    if not entity_df[key].is_unique:
        raise FeatureStoreError(f"the applications repeat {key} values: one row per {key}")
    # Sorted first, so the joined columns come back in the final order and are placed beside
    # the application columns without a merge.
    entity_df = entity_df.sort_values(key, kind="mergesort").reset_index(drop=True)
    features = join_features(entity_df, entity_key, views)
    # One frame over both sides' columns as they are: concatenating would copy every column.
    columns = {**dict(entity_df.items()), **dict(features.items())}
    frame = pd.DataFrame(columns, copy=False)
    derived = derive(frame)
    for column in derived.columns:
        frame[column] = derived[column]
    return frame


def join_features(
    entity_df: pd.DataFrame, entity_key: str, views: Sequence[ViewSource]
) -> pd.DataFrame:
    """Every view's features for each row of `entity_df`, in its row order (RangeIndex)."""
    rows = matched_rows(entity_df, entity_key, views)
    names: list[str] = []
    arrays: list[pa.ChunkedArray] = []
    for i, view in enumerate(views):
        # The join carried only row numbers: the feature values are taken from the file once,
        # so the engine never sorts or buffers the wide rows.
        table = pq.read_table(view.path, columns=list(view.features))
        taken = table.take(rows.column(i))
        names += view.features
        arrays += taken.columns
    return _as_merged(pa.Table.from_arrays(arrays, names=names))


def matched_rows(entity_df: pd.DataFrame, entity_key: str, views: Sequence[ViewSource]) -> pa.Table:
    """Per view, the file row number of each entity row's match (null: none), in row order."""
    spine = pa.table(
        {
            _ROW: pa.array(np.arange(len(entity_df), dtype="int64")),
            entity_key: pa.array(entity_df[entity_key], type=pa.string(), from_pandas=True),
            _TIME: pa.array(_utc(entity_df[EVENT_TIME]), type=pa.timestamp("us", tz="UTC")),
        }
    )
    con = duckdb.connect()
    try:
        # Instants compare the same in any zone; UTC keeps the engine from converting them.
        con.execute("SET TimeZone = 'UTC'")
        con.register("spine", spine)
        return con.sql(_join_sql(entity_key, views)).to_arrow_table()
    finally:
        con.close()


def _join_sql(entity_key: str, views: Sequence[ViewSource]) -> str:
    selects: list[str] = []
    joins: list[str] = []
    for i, view in enumerate(views):
        alias = f"v{i}"
        # Rows with no event time are never at or before an application, for Feast neither.
        joins.append(
            f"ASOF LEFT JOIN (SELECT {_quote(entity_key)} AS __key, "
            f"{_quote(view.timestamp)} AS __time, file_row_number AS __file_row "
            f"FROM read_parquet({_literal(view.path)}, file_row_number = true) "
            f"WHERE {_quote(view.timestamp)} IS NOT NULL) {alias} "
            f"ON s.{_quote(entity_key)} = {alias}.__key AND s.{_TIME} >= {alias}.__time"
        )
        # The ASOF match is the latest row at or before the time; older than the TTL, so is
        # every other candidate, and the view has nothing for this application.
        fresh = "TRUE"
        if view.ttl is not None:
            micros = int(view.ttl / timedelta(microseconds=1))
            fresh = f"{alias}.__time >= s.{_TIME} - to_microseconds({micros})"
        selects.append(f"CASE WHEN {fresh} THEN {alias}.__file_row END AS {alias}")
    return (
        f"SELECT {', '.join(selects) or 's.' + _ROW} FROM spine s {' '.join(joins)} "
        f"ORDER BY s.{_ROW}"
    )


def _as_merged(table: pa.Table) -> pd.DataFrame:
    """The features in pandas, missing values as a pandas left merge leaves them (NaN, also in
    text columns), which is what the Feast path's frame holds."""
    features = table.to_pandas()
    for name, column in zip(table.column_names, table.columns, strict=True):
        # Arrow counts the nulls for free; scanning object columns for them does not.
        if column.null_count and features[name].dtype == object:
            features[name] = features[name].where(features[name].notna(), np.nan)
    return features


def _utc(times: pd.Series) -> pd.Series:
    """Event times as UTC instants; naive ones are taken as UTC, as Feast does."""
    times = pd.to_datetime(times)
    return times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"
