"""Snowflake: connection from settings, queries, and seeding tables (the reader is in
snowflake_reader.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from app.config import ENV_PREFIX, Settings
from app.dataset import TableSpec
from app.errors import ConfigError, SourceError
from app.settings.data import SNOWFLAKE_IDENTIFIER


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


def quote_source(name: str) -> str:
    """A name from the dataset spec, quoted so Snowflake finds it: a plain identifier as
    Snowflake stores an unquoted one (upper-cased), anything else (`Times-Late`, spaces)
    exactly as written, since only a quoted identifier can hold it."""
    if isinstance(name, str) and SNOWFLAKE_IDENTIFIER.fullmatch(name):
        return f'"{name.upper()}"'
    if not isinstance(name, str) or not 0 < len(name) <= 255 or not name.isprintable():
        raise ConfigError(f"invalid Snowflake name {name!r:.80}: 1-255 printable characters")
    return '"' + name.replace('"', '""') + '"'


def match_names(wanted: list[str], found: list[str]) -> dict[str, str]:
    """Each wanted name -> the name the table really has: the same, else the one equal to it
    ignoring case (unquoted names come back upper-cased; quoted ones keep their case)."""
    by_upper: dict[str, str] = {}
    for name in found:
        by_upper.setdefault(name.upper(), name)
    exact = set(found)
    return {
        w: w if w in exact else by_upper[w.upper()]
        for w in wanted
        if w in exact or w.upper() in by_upper
    }


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


def describe_target(params: dict[str, Any]) -> str:
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
        raise SourceError(f"cannot connect to {describe_target(params)}: {reason}") from None
    except OSError as exc:
        raise SourceError(f"cannot reach {describe_target(params)}: {exc}") from None
    try:
        yield conn
    finally:
        conn.close()


def source_table(settings: Settings, spec: TableSpec) -> str:
    """The table's fully qualified, quoted warehouse name."""
    return ".".join((*quoted_database_schema(settings), quote_source(spec.source_name)))


def table_query(settings: Settings, spec: TableSpec, found: list[str] | None = None) -> str:
    """The SQL for one table: a configured query, or every column of the table by name.

    `found` is the table's real column names (from `describe_table`): a spec's name then
    matches whatever case the table was created with."""
    if spec.name in settings.snowflake_queries:
        return settings.snowflake_queries[spec.name]
    actual = match_names(spec.source_columns, found or [])
    columns = ", ".join(
        '"' + actual[c].replace('"', '""') + '"' if c in actual else quote_source(c)
        for c in spec.source_columns
    )
    return f"SELECT {columns} FROM {source_table(settings, spec)}"


def describe_table(settings: Settings, spec: TableSpec) -> list[str] | None:
    """The table's column names as Snowflake holds them; None for a configured query."""
    if spec.name in settings.snowflake_queries:
        return None
    params = connection_parameters(settings)
    with connect(params) as conn:
        cursor = conn.cursor()
        execute(cursor, f"SELECT * FROM {source_table(settings, spec)} LIMIT 0", params)
        return [d.name for d in cursor.description]


def read_frame(settings: Settings, table: str, limit: int | None = None) -> pd.DataFrame:
    """A whole table of the configured database and schema, by its warehouse name, through
    one cursor (no Ray: for a sample that fits in memory, e.g. drafting a spec from it).

    Columns keep the names Snowflake holds (unquoted ones upper-cased)."""
    params = connection_parameters(settings)
    name = ".".join((*quoted_database_schema(settings), quote_source(table)))
    sql = f"SELECT * FROM {name}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with connect(params) as conn:
        cursor = conn.cursor()
        execute(cursor, sql, params)
        result = cursor.fetch_arrow_all()
        names = [d.name for d in cursor.description]
    # The connector returns no table at all for an empty result.
    return result.to_pandas() if result is not None else pd.DataFrame(columns=names)


def execute(cursor: Any, sql: str, params: dict[str, Any]) -> None:
    from snowflake.connector.errors import ProgrammingError

    try:
        cursor.execute(sql)
    except ProgrammingError as exc:
        raise SourceError(
            f"query failed on {describe_target(params)}: {exc.raw_msg or exc}"
        ) from None


_SNOWFLAKE_TYPES = {
    "string": "VARCHAR",
    "int64": "NUMBER(38,0)",
    "double": "FLOAT",
    "bool": "BOOLEAN",
}


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
            execute(cursor, sql, params)
        for name, df in tables.items():
            spec = specs[name]
            schema = spec.source_schema
            target = source_table(settings, spec)
            columns = ", ".join(f"{quote_source(f.name)} {_column_type(f.type)}" for f in schema)
            file_name = f"{name}.parquet"
            path = Path(tmp) / file_name
            table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
            # COPY matches Parquet columns to table columns by name, ignoring case: the file
            # carries the names as the table stores them.
            stored = [quote_source(n)[1:-1].replace('""', '"') for n in schema.names]
            pq.write_table(table.rename_columns(stored), path)
            loading = qualified_table(settings, f"{name}__loading")
            execute(cursor, f"CREATE OR REPLACE TABLE {loading} ({columns})", params)
            execute(
                cursor,
                f"PUT 'file://{path.as_posix()}' @{stage} OVERWRITE=TRUE AUTO_COMPRESS=FALSE",
                params,
            )
            execute(
                cursor,
                f"COPY INTO {loading} FROM @{stage}/{file_name} FILE_FORMAT=(TYPE=PARQUET) "
                "MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE",
                params,
            )
            # CREATE OR REPLACE ... CLONE swaps the loaded copy in as one statement.
            execute(cursor, f"CREATE OR REPLACE TABLE {target} CLONE {loading}", params)
            execute(cursor, f"DROP TABLE IF EXISTS {loading}", params)
            execute(cursor, f"SELECT COUNT(*) FROM {target}", params)
            loaded[name] = int(cursor.fetchone()[0])
    return loaded
