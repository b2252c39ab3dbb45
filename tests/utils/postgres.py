"""Fresh PostgreSQL databases for the tests that need one (MLflow's server, Feast's SQL registry).

Needs PostgreSQL on 127.0.0.1:5432 (trust auth for `postgres`). Without one the test skips,
unless CREDIT_TEST_REQUIRE_POSTGRES=1 (CI), where it fails.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

# Read at import: the autouse fixture of tests/conftest.py hides CREDIT_* variables from tests.
REQUIRE_POSTGRES = os.environ.get("CREDIT_TEST_REQUIRE_POSTGRES") == "1"
PG_HOST, PG_PORT = "127.0.0.1", 5432
ADMIN_URI = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"


def database_url(name: str, password: str | None = None, driver: str = "psycopg") -> str:
    auth = f"postgres:{password}" if password else "postgres"
    return f"postgresql+{driver}://{auth}@{PG_HOST}:{PG_PORT}/{name}"


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new database's name, dropped at the end (with whatever still holds it open)."""
    import psycopg
    from psycopg import sql

    try:
        admin = psycopg.connect(ADMIN_URI, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        admin, reason = None, " ".join(str(exc).split())[:200]
    if admin is None:
        message = f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: {reason}"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{message} (CREDIT_TEST_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(message)
    name = f"credit_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield name
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def query(database: str, statement: str, *params) -> list[tuple]:
    import psycopg

    uri = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{database}"
    with psycopg.connect(uri, connect_timeout=5) as conn:
        return conn.execute(statement, params).fetchall()
