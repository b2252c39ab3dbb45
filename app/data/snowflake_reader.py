"""Reading a Snowflake table as a Ray Dataset: the query's Arrow result batches spread over
Ray tasks, or Ray's own `read_snowflake` (kept for comparison)."""

from __future__ import annotations

from functools import partial
from typing import Any

import pyarrow as pa
import ray
from ray.data import Dataset
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from app.config import Settings
from app.data.snowflake import (
    connect,
    connection_parameters,
    describe_table,
    execute,
    match_names,
    quote_source,
    table_query,
)
from app.dataset import TableSpec
from app.errors import SourceError
from app.runtime import read_args


def _rename(table: pa.Table, names: dict[str, str]) -> pa.Table:
    """Result columns under the spec's source names (Snowflake hands back its own case);
    others lower-cased."""
    return table.rename_columns([names.get(c.upper(), c.lower()) for c in table.column_names])


def _read_batches(batches: list[Any], names: dict[str, str]) -> list[pa.Table]:
    return [_rename(b.to_arrow(), names) for b in batches]


def _is_inline(batch: Any) -> bool:
    # The connector marks a batch whose rows came with the query response as local; it has no
    # public accessor for this.
    return bool(getattr(batch, "_local", False))


def _get_tables(ref: ray.ObjectRef) -> list[pa.Table]:
    return [ray.get(ref)]


def _read_partition(sql: str, params: dict[str, Any], names: dict[str, str]) -> list[pa.Table]:
    with connect(params) as conn:
        cursor = conn.cursor()
        execute(cursor, sql, params)
        return _read_batches(cursor.get_result_batches() or [], names)


class SnowflakeResultBatchDatasource(Datasource):
    """Reads a query's Arrow result batches in parallel Ray tasks.

    Snowflake splits a large result into batches held in cloud storage; each downloads on its
    own, so spreading them over tasks reads in parallel instead of through one cursor. A server
    that returns one inline batch (small results, Snowflake-compatible test servers) gives no
    parallelism that way: `partitions > 1` then runs one query per hash partition of
    `partition_key`, each in its own task.
    """

    def __init__(
        self,
        sql: str,
        params: dict[str, Any],
        required_columns: list[str],
        partition_key: str | None = None,
        partitions: int = 1,
    ):
        super().__init__()
        self._sql = sql
        self._params = params
        self._required = required_columns
        self._partition_key = partition_key
        self._partitions = partitions if partition_key else 1
        self._batches: list[Any] | None = None
        self._inline_refs: list[tuple[Any, int, int]] | None = None
        self._names: list[str] = []
        self._result_names: list[str] = []
        # Result column (upper-cased) -> the spec's name for it.
        self._renames = {c.upper(): c for c in required_columns}

    def _check_columns(self, names: list[str]) -> None:
        found = match_names(self._required, names)
        missing = [c for c in self._required if c not in found]
        if missing:
            raise SourceError(
                f"query result lacks columns {', '.join(missing)} "
                f"(got {', '.join(names)}): {self._sql}"
            )

    def _prepare(self) -> None:
        """Run the query (or, when partitioned, only describe it) and check its columns."""
        if self._batches is not None:
            return
        with connect(self._params) as conn:
            cursor = conn.cursor()
            if self._partitions > 1:
                execute(cursor, f"SELECT * FROM ({self._sql}) AS q LIMIT 0", self._params)
                self._batches = []
            else:
                execute(cursor, self._sql, self._params)
                self._batches = list(cursor.get_result_batches() or [])
            self._result_names = [d.name for d in cursor.description]
            self._names = [self._renames.get(n.upper(), n) for n in self._result_names]
        self._check_columns(self._names)

    def _partition_sql(self, index: int) -> str:
        # The key as the query's result names it (its case is the table's).
        wanted = self._partition_key or ""
        found = match_names([wanted], self._result_names).get(wanted)
        key = '"' + found.replace('"', '""') + '"' if found else quote_source(wanted)
        return (
            f"SELECT * FROM ({self._sql}) AS q "
            f"WHERE MOD(ABS(HASH(q.{key})), {self._partitions}) = {index}"
        )

    def num_read_tasks(self) -> int:
        self._prepare()
        return self._partitions if self._partitions > 1 else max(1, len(self._batches or []))

    def estimate_inmemory_data_size(self) -> int | None:
        self._prepare()
        return sum(b.uncompressed_size or 0 for b in self._batches or []) or None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        self._prepare()
        if self._partitions > 1:
            return [
                ReadTask(
                    partial(_read_partition, self._partition_sql(i), self._params, self._renames),
                    BlockMetadata(None, None, None, None),
                )
                for i in range(self._partitions)
            ]
        batches = self._batches or []
        if not batches:
            empty = pa.schema([(n, pa.string()) for n in self._names]).empty_table()
            return [ReadTask(lambda: [empty], BlockMetadata(0, 0, None, None))]
        # A batch the server sent inline (small results, Snowflake-compatible servers) is
        # already in this process: decode it once and share it through the object store
        # instead of shipping its raw payload inside a read task to be decoded again.
        if self._inline_refs is None:
            # Ray Data asks for the read tasks more than once per read: decode only once.
            self._inline_refs = [
                (ray.put(table), table.num_rows, table.nbytes)
                for table in _read_batches([b for b in batches if _is_inline(b)], self._renames)
            ]
        tasks = [
            ReadTask(partial(_get_tables, ref), BlockMetadata(rows, size, None, None))
            for ref, rows, size in self._inline_refs
        ]
        remote = [b for b in batches if not _is_inline(b)]
        if not remote:
            return tasks
        groups = max(1, min(parallelism if parallelism > 0 else len(remote), len(remote)))
        # Greedy by row count, so one big batch does not leave the other tasks idle.
        buckets: list[list[Any]] = [[] for _ in range(groups)]
        rows = [0] * groups
        for batch in sorted(remote, key=lambda b: b.rowcount, reverse=True):
            i = rows.index(min(rows))
            buckets[i].append(batch)
            rows[i] += batch.rowcount
        return tasks + [
            ReadTask(
                partial(_read_batches, group, self._renames),
                BlockMetadata(
                    num_rows=sum(b.rowcount for b in group),
                    size_bytes=sum(b.uncompressed_size or 0 for b in group) or None,
                    input_files=None,
                    exec_stats=None,
                ),
            )
            for group in buckets
            if group
        ]


def read_snowflake_table(spec: TableSpec, settings: Settings) -> Dataset:
    """One warehouse table from Snowflake as a Ray Dataset, under the spec's source names."""
    params = connection_parameters(settings)
    sql = table_query(settings, spec, describe_table(settings, spec))
    renames = {c.upper(): c for c in spec.source_columns}
    remote = read_args(settings.ingest_read_resources)
    if settings.snowflake_read_mode == "read_snowflake":
        return ray.data.read_snowflake(sql, params, ray_remote_args=remote).map_batches(
            _rename, fn_kwargs={"names": renames}, batch_format="pyarrow"
        )
    source = SnowflakeResultBatchDatasource(
        sql,
        params,
        spec.source_columns,
        partition_key=spec.source_of(spec.unique_key[0]),
        partitions=settings.snowflake_read_partitions,
    )
    # One block per read task: Ray Data would otherwise split a small result into 200 blocks
    # and run a task for each.
    return ray.data.read_datasource(
        source, override_num_blocks=source.num_read_tasks(), ray_remote_args=remote
    )
