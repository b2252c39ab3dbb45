"""Load feature views from the offline snapshot into the online store, streamed by Ray Data.

Feast's `materialize` (local engine, file offline store) reads a whole view into pandas and
converts every row before writing any: memory grows with the table (7.9 GB at 1M applicants)
and one core does the work. Here Ray Data reads the Parquet source within the event-time window
and tasks convert and write batch by batch. What reaches the store is Feast's own: its rows,
written by the provider's `online_write_batch` (its key serialization, its Redis newer-wins
check) or, into Redis, the same bytes encoded a column at a time (redis_rows), and the
interval recorded in the registry as `materialize` records it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from feast import FeatureStore, FeatureView, FileSource, RepoConfig, ValueType
from feast.utils import _get_column_names, make_tzaware

from app.features import redis_rows
from app.features.online_rows import to_feast_rows

Progress = Callable[[int, int], None]
# Rows per write: one Redis pipeline or SQLite transaction, small enough to keep a task's
# memory flat, large enough that per-call setup (a connection, the view) is noise.
BATCH_ROWS = 10_000
# Windows up to this many rows are written by this process (an incremental run, usually).
IN_PROCESS_ROWS = 50_000


@dataclass(frozen=True)
class ViewColumns:
    """Where a view's rows come from: its source file, the columns read (named as in the file),
    and the renames (the source's field mapping) that give the view's names."""

    path: str
    read: list[str]
    keys_read: list[str]  # the join keys and times, as the file names them
    join_keys: dict[str, ValueType]  # view names, in the view's order
    timestamp: str
    created: str | None
    renames: dict[str, str]

    def rename(self, table: pa.Table) -> pa.Table:
        if not self.renames:
            return table
        return table.rename_columns([self.renames.get(c, c) for c in table.column_names])


def view_columns(view: FeatureView, config: RepoConfig, entities: Sequence) -> ViewColumns:
    source = view.batch_source
    if not isinstance(source, FileSource):
        raise TypeError(f"view {view.name!r}: only file sources can be streamed, not {source}")
    keys, features, timestamp, created = _get_column_names(view, list(entities))
    times = {timestamp, created}
    return ViewColumns(
        path=FileSource.get_uri_for_file_path(config.repo_path, source.path),
        read=list(dict.fromkeys([*keys, *features, timestamp, *([created] if created else [])])),
        keys_read=[*keys, timestamp, *([created] if created else [])],
        join_keys={e.name: e.dtype.to_value_type() for e in view.entity_columns},
        timestamp=timestamp,
        created=created or None,
        # The times keep their source names: Feast's converter reads them by those names.
        renames={k: v for k, v in (source.field_mapping or {}).items() if k not in times},
    )


def window(columns: ViewColumns, start: datetime, end: datetime) -> pads.Expression:
    """Feast's file-store window: both ends included (feast/infra/offline_stores/dask.py)."""
    ts = pads.field(columns.timestamp)
    return (ts >= pa.scalar(start)) & (ts <= pa.scalar(end))


def latest_rows(keys: pa.Table, columns: ViewColumns) -> pa.Table:
    """For each entity with several rows in the window, the (event, created) time of its newest
    one, as Feast's materialize keeps only that; entities with one row need no check (none,
    usually, so this costs one pass over the key and time columns)."""
    key_names = list(columns.join_keys)
    counts = keys.group_by(key_names).aggregate([([], "count_all")])
    repeated = counts.filter(pc.field("count_all") > 1).drop_columns(["count_all"])
    if repeated.num_rows == 0:
        return repeated
    times = [columns.timestamp, *([columns.created] if columns.created else [])]
    df = keys.join(repeated, key_names, join_type="inner").to_pandas()
    newest = df.sort_values(times, ascending=False, kind="stable").drop_duplicates(key_names)
    return pa.Table.from_pandas(newest[key_names + times], preserve_index=False)


def drop_superseded(batch: pa.Table, latest: pa.Table, columns: ViewColumns) -> pa.Table:
    """The batch without rows a newer row of the same entity replaces."""
    if latest.num_rows == 0:
        return batch
    key_names = list(columns.join_keys)
    marked = latest.append_column("_newest", pa.array([True] * latest.num_rows))
    times = [n for n in marked.column_names if n not in key_names and n != "_newest"]
    stale = batch.join(marked.drop_columns(times), key_names, join_type="left outer")
    newest = batch.join(marked, [*key_names, *times], join_type="left outer")
    # Rows of repeated entities survive only when they match the entity's newest times.
    keep_repeated = newest.filter(pc.is_valid(newest["_newest"])).drop_columns(["_newest"])
    single = stale.filter(pc.is_null(stale["_newest"])).drop_columns(["_newest"])
    return pa.concat_tables([single, keep_repeated.select(single.column_names)])


def _write_batch(
    batch: pa.Table,
    *,
    config: RepoConfig,
    view_proto: bytes,
    columns: ViewColumns,
    latest: pa.Table,
) -> dict[str, list[int]]:
    """A Ray task: one batch converted and written in Feast's layout: by redis_rows into a
    Redis store where it covers the view, else through Feast's provider."""
    from feast.infra.provider import get_provider
    from feast.protos.feast.core.FeatureView_pb2 import FeatureView as FeatureViewProto

    view = FeatureView.from_proto(FeatureViewProto.FromString(view_proto))
    read = batch.num_rows
    batch = drop_superseded(columns.rename(batch), latest, columns)
    # The rows are ~10 small acyclic objects each, freed by reference counting: the cyclic
    # collector's passes over them cost more than building them (60% of the conversion).
    collecting = gc.isenabled()
    gc.disable()
    try:
        if not batch.num_rows:
            written = 0
        elif redis_rows.covers(view, config, batch, columns.join_keys):
            rows = redis_rows.encode_rows(batch, view, config, columns.join_keys, columns.timestamp)
            redis_rows.write_rows(config, rows)
            written = len(rows.keys)
        else:
            rows = to_feast_rows(batch, view, columns)
            get_provider(config).online_write_batch(config, view, rows, progress=None)
            written = len(rows)
    finally:
        if collecting:
            gc.enable()
    return {"read": [read], "written": [written]}


@dataclass
class _Plan:
    view: FeatureView
    start: datetime
    columns: ViewColumns
    rows: int
    latest: pa.Table


def incremental_start(view: FeatureView, now: datetime) -> datetime:
    """Where `materialize_incremental` starts a view: its last end, else a TTL or a year ago."""
    if view.most_recent_end_time is not None:
        return make_tzaware(view.most_recent_end_time)
    if view.ttl is None:
        raise ValueError(f"view {view.name!r} has no TTL and was never materialized")
    return now - (view.ttl if view.ttl.total_seconds() > 0 else timedelta(weeks=52))


def _plan(store: FeatureStore, view: FeatureView, start: datetime, end: datetime) -> _Plan:
    entities = [store.registry.get_entity(name, store.project) for name in view.entities]
    columns = view_columns(view, store.config, entities)
    keys = pads.dataset(columns.path, format="parquet").to_table(
        columns=columns.keys_read, filter=window(columns, start, end)
    )
    return _Plan(view, start, columns, keys.num_rows, latest_rows(columns.rename(keys), columns))


def _stream(
    plan: _Plan, end: datetime, task: dict, workers: int, batch_rows: int, in_process: int
) -> Iterator:
    """Per written batch, its counts: from Ray tasks, or here when the window is small (a
    Ray Data run costs seconds of worker start-up, more than writing a few thousand rows)."""
    if plan.rows <= in_process:
        scan = pads.dataset(plan.columns.path, format="parquet").scanner(
            columns=plan.columns.read,
            filter=window(plan.columns, plan.start, end),
            batch_size=batch_rows,
        )
        for batch in scan.to_batches():
            if batch.num_rows:
                yield _write_batch(pa.Table.from_batches([batch]), **task)
        return
    import ray
    from ray.data.expressions import col, lit

    ts = plan.columns.timestamp
    ds = ray.data.read_parquet(plan.columns.path, columns=plan.columns.read)
    ds = ds.filter(expr=(col(ts) >= lit(plan.start)) & (col(ts) <= lit(end)))
    # A snapshot table is one Parquet row group (one read block): split it, streaming, so
    # every writer gets work.
    ds = ds.repartition(target_num_rows_per_block=batch_rows)
    written = ds.map_batches(
        _write_batch,
        batch_size=None,
        batch_format="pyarrow",
        compute=ray.data.TaskPoolStrategy(size=workers),
        fn_kwargs=task,
    )
    for counts in written.iter_batches(batch_size=None, batch_format="pyarrow"):
        yield {k: counts[k].to_pylist() for k in ("read", "written")}


def writers(config: RepoConfig) -> int:
    """Parallel writers the online store takes: SQLite is one file with one writer."""
    return 1 if config.online_store.type == "sqlite" else 2


def load_views(
    store: FeatureStore,
    views: Sequence[FeatureView],
    end: datetime,
    start: datetime | None = None,
    *,
    on_progress: Progress | None = None,
    concurrency: int | None = None,
    batch_rows: int = BATCH_ROWS,
    in_process_rows: int = IN_PROCESS_ROWS,
) -> int:
    """Write each view's rows with event times in [start, end] to the online store and record
    the interval in the registry; the rows written. Without `start`, each view continues from
    where its last run ended (as `materialize_incremental`). Needs a running Ray (init_ray).

    A view whose write fails keeps its previous registry state and intervals, as in Feast.
    """
    end = make_tzaware(end)
    now = datetime.now(UTC)
    plans = [
        _plan(store, view, make_tzaware(start) if start else incremental_start(view, now), end)
        for view in views
    ]
    total, done = sum(p.rows for p in plans), 0

    def tick(rows: int) -> None:
        nonlocal done
        done += rows
        if on_progress is not None:
            on_progress(done, total)

    workers = concurrency or writers(store.config)
    written = 0
    for plan in plans:
        previous: dict = {}
        # Feast's own state bookkeeping (MATERIALIZING, rolled back on failure).
        store._transition_fv_to_materializing(plan.view, [], previous)
        task = {
            "config": store.config,
            "view_proto": plan.view.to_proto().SerializeToString(),
            "columns": plan.columns,
            "latest": plan.latest,
        }
        try:
            for counts in _stream(plan, end, task, workers, batch_rows, in_process_rows):
                tick(sum(counts["read"]))
                written += sum(counts["written"])
        except BaseException:
            store._rollback_fv_states([plan.view], previous)
            raise
        store.registry.apply_materialization(plan.view, store.project, plan.start, end)
    return written
