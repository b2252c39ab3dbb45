"""Snowflake: connection from settings, a parallel Arrow result-batch reader, and seeding."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray.data import Dataset
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from app.config import ENV_PREFIX, SNOWFLAKE_IDENTIFIER, Settings
from app.data.schema import TableSpec
from app.errors import ConfigError, SourceError


def quote_identifier(name: str, what: str = "") -> str:
    """Validate an identifier and quote it, upper-cased as Snowflake stores unquoted names.

    Names come from settings; quoting after validation means no value can smuggle SQL in.
    `what` names where the value came from (a setting) for the error message.
    """
    if not isinstance(name, str) or not SNOWFLAKE_IDENTIFIER.fullmatch(name):
        shown = repr(name[:60] + "..." if isinstance(name, str) and len(name) > 60 else name)
        source = f" in {what}" if what else ""
        raise ConfigError(
            f"invalid Snowflake identifier {shown}{source}: use ASCII letters, digits, _ or $, "
            "not starting with a digit, at most 255 characters"
        )
    return f'"{name.upper()}"'


def quoted_database_schema(settings: Settings) -> tuple[str, str]:
    """The configured database and schema, validated again here: settings copied with
    `model_copy(update=...)` skip the settings' own check."""
    return (
        quote_identifier(settings.snowflake_database, f"{ENV_PREFIX}SNOWFLAKE_DATABASE"),
        quote_identifier(settings.snowflake_schema, f"{ENV_PREFIX}SNOWFLAKE_SCHEMA"),
    )


def qualified_table(settings: Settings, table: str) -> str:
    return ".".join((*quoted_database_schema(settings), quote_identifier(table, "table name")))


def connection_parameters(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `snowflake.connector.connect`; holds secrets, never log it."""
    missing = [
        name for name in ("snowflake_account", "snowflake_user") if not getattr(settings, name)
    ]
    if settings.snowflake_password is None and settings.snowflake_private_key_path is None:
        missing.append("snowflake_password or snowflake_private_key_path")
    if missing:
        names = ", ".join(f"CREDIT_{m.upper()}" for m in missing)
        raise ConfigError(f"Snowflake source needs settings: {names}")
    params: dict[str, Any] = {
        "account": settings.snowflake_account,
        "user": settings.snowflake_user,
        "database": settings.snowflake_database,
        "schema": settings.snowflake_schema,
        "login_timeout": settings.snowflake_login_timeout,
        "network_timeout": settings.snowflake_login_timeout,
        "protocol": settings.snowflake_protocol,
    }
    if settings.snowflake_password is not None:
        params["password"] = settings.snowflake_password.get_secret_value()
    if settings.snowflake_private_key_path is not None:
        params["private_key_file"] = str(settings.snowflake_private_key_path)
        if settings.snowflake_private_key_passphrase is not None:
            params["private_key_file_pwd"] = (
                settings.snowflake_private_key_passphrase.get_secret_value()
            )
    for name in ("warehouse", "role", "host", "port"):
        value = getattr(settings, f"snowflake_{name}")
        if value is not None:
            params[name] = value
    return params


def _describe_target(params: dict[str, Any]) -> str:
    where = params.get("host") or f"{params['account']}.snowflakecomputing.com"
    port = f":{params['port']}" if params.get("port") else ""
    return f"Snowflake at {where}{port} (account {params['account']}, user {params['user']})"


@contextmanager
def connect(params: dict[str, Any]) -> Iterator[Any]:
    """A connection whose failures name the target but never the credentials."""
    import snowflake.connector
    from snowflake.connector.errors import Error as SnowflakeError

    try:
        conn = snowflake.connector.connect(**params)
    except SnowflakeError as exc:
        reason = getattr(exc, "raw_msg", None) or type(exc).__name__
        raise SourceError(f"cannot connect to {_describe_target(params)}: {reason}") from None
    except OSError as exc:
        raise SourceError(f"cannot reach {_describe_target(params)}: {exc}") from None
    try:
        yield conn
    finally:
        conn.close()


def table_query(settings: Settings, spec: TableSpec) -> str:
    """The SQL for one table: a configured query, or every column of the table by name."""
    if spec.name in settings.snowflake_queries:
        return settings.snowflake_queries[spec.name]
    columns = ", ".join(quote_identifier(c, "column name") for c in spec.columns)
    return f"SELECT {columns} FROM {qualified_table(settings, spec.name)}"


def _lower_names(table: pa.Table) -> pa.Table:
    return table.rename_columns([c.lower() for c in table.column_names])


def _execute(cursor: Any, sql: str, params: dict[str, Any]) -> None:
    from snowflake.connector.errors import ProgrammingError

    try:
        cursor.execute(sql)
    except ProgrammingError as exc:
        raise SourceError(
            f"query failed on {_describe_target(params)}: {exc.raw_msg or exc}"
        ) from None


def _read_batches(batches: list[Any]) -> list[pa.Table]:
    return [_lower_names(b.to_arrow()) for b in batches]


def _is_inline(batch: Any) -> bool:
    # The connector marks a batch whose rows came with the query response as local; it has no
    # public accessor for this.
    return bool(getattr(batch, "_local", False))


def _get_tables(ref: ray.ObjectRef) -> list[pa.Table]:
    return [ray.get(ref)]


def _read_partition(sql: str, params: dict[str, Any]) -> list[pa.Table]:
    with connect(params) as conn:
        cursor = conn.cursor()
        _execute(cursor, sql, params)
        return _read_batches(cursor.get_result_batches() or [])


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

    def _check_columns(self, names: list[str]) -> None:
        missing = [c for c in self._required if c not in names]
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
                _execute(cursor, f"SELECT * FROM ({self._sql}) AS q LIMIT 0", self._params)
                self._batches = []
            else:
                _execute(cursor, self._sql, self._params)
                self._batches = list(cursor.get_result_batches() or [])
            self._names = [d.name.lower() for d in cursor.description]
        self._check_columns(self._names)

    def _partition_sql(self, index: int) -> str:
        key = quote_identifier(self._partition_key or "", "partition key")
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
                    partial(_read_partition, self._partition_sql(i), self._params),
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
                for table in _read_batches([b for b in batches if _is_inline(b)])
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
                partial(_read_batches, group),
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
    """One warehouse table from Snowflake as a Ray Dataset, columns lower-cased."""
    params = connection_parameters(settings)
    sql = table_query(settings, spec)
    if settings.snowflake_read_mode == "read_snowflake":
        return ray.data.read_snowflake(sql, params).map_batches(
            _lower_names, batch_format="pyarrow"
        )
    source = SnowflakeResultBatchDatasource(
        sql,
        params,
        list(spec.columns),
        partition_key=spec.unique_key[0],
        partitions=settings.snowflake_read_partitions,
    )
    # One block per read task: Ray Data would otherwise split a small result into 200 blocks
    # and run a task for each.
    return ray.data.read_datasource(source, override_num_blocks=source.num_read_tasks())


_SNOWFLAKE_TYPES = {"string": "VARCHAR", "int64": "NUMBER(38,0)", "double": "FLOAT"}


def _column_type(dtype: pa.DataType) -> str:
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMP_TZ"
    return _SNOWFLAKE_TYPES[str(dtype)]


def seed_snowflake(
    tables: dict[str, pd.DataFrame], specs: dict[str, TableSpec], settings: Settings
) -> dict[str, int]:
    """Load tables INTO Snowflake the way a warehouse load does: create, stage, PUT, COPY INTO.

    Each table is loaded under a staging name and swapped in only after COPY succeeded, so a
    failed load leaves the previous table as it was.
    """
    params = connection_parameters(settings)
    params.pop("database", None)
    params.pop("schema", None)
    database, schema_name = quoted_database_schema(settings)
    schema = f"{database}.{schema_name}"
    stage = f"{schema}.{quote_identifier('CREDIT_SEED_STAGE')}"
    loaded: dict[str, int] = {}
    with connect(params) as conn, tempfile.TemporaryDirectory() as tmp:
        cursor = conn.cursor()
        for sql in (
            f"CREATE DATABASE IF NOT EXISTS {database}",
            f"CREATE SCHEMA IF NOT EXISTS {schema}",
            f"CREATE STAGE IF NOT EXISTS {stage}",
        ):
            _execute(cursor, sql, params)
        for name, df in tables.items():
            spec = specs[name]
            target = qualified_table(settings, name)
            columns = ", ".join(
                f"{quote_identifier(c)} {_column_type(t)}" for c, t in spec.columns.items()
            )
            file_name = f"{name}.parquet"
            path = Path(tmp) / file_name
            pq.write_table(
                pa.Table.from_pandas(
                    df[list(spec.columns)], schema=spec.arrow_schema, preserve_index=False
                ),
                path,
            )
            loading = qualified_table(settings, f"{name}__loading")
            _execute(cursor, f"CREATE OR REPLACE TABLE {loading} ({columns})", params)
            _execute(
                cursor,
                f"PUT 'file://{path.as_posix()}' @{stage} OVERWRITE=TRUE AUTO_COMPRESS=FALSE",
                params,
            )
            _execute(
                cursor,
                f"COPY INTO {loading} FROM @{stage}/{file_name} FILE_FORMAT=(TYPE=PARQUET) "
                "MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE",
                params,
            )
            # CREATE OR REPLACE ... CLONE swaps the loaded copy in as one statement.
            _execute(cursor, f"CREATE OR REPLACE TABLE {target} CLONE {loading}", params)
            _execute(cursor, f"DROP TABLE IF EXISTS {loading}", params)
            _execute(cursor, f"SELECT COUNT(*) FROM {target}", params)
            loaded[name] = int(cursor.fetchone()[0])
    return loaded
