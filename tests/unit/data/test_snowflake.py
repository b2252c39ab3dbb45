"""Snowflake identifiers are validated and quoted, never interpolated raw; connection settings
become the connector's parameters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import load_settings
from app.data.snowflake import (
    connection_parameters,
    qualified_table,
    quote_identifier,
    quote_source,
    seed_snowflake,
    table_query,
)
from app.data.snowflake_reader import SnowflakeResultBatchDatasource
from app.errors import ConfigError
from app.runtime import run_job
from app.settings.data import SNOWFLAKE_IDENTIFIER
from tests.utils.datasets import german

TABLES = german().tables

INJECTIONS = [
    "RAW; DROP TABLE x",
    'a"b',
    'RAW"; DROP TABLE x; --',
    "x--",
    "x/*",
    "'RAW'",
    "RAW.PUBLIC",
    "",
    " RAW",
    "RAW\n",  # a `$` anchor would accept this
    "RAW\x00",
    "R\u0410W",  # Cyrillic A
    "\uff32\uff21\uff37",  # fullwidth RAW
    "RAW\u200b",  # zero-width space
    "stra\u00dfe",  # upper() turns it into STRASSE
    "1RAW",
    "x" * 300,
]
INJECTION_IDS = [repr(v)[:24] for v in INJECTIONS]


@pytest.mark.parametrize("field", ["snowflake_database", "snowflake_schema"])
@pytest.mark.parametrize("value", INJECTIONS, ids=INJECTION_IDS)
def test_bad_identifiers_are_refused_when_settings_load(field, value):
    with pytest.raises(ValidationError) as caught:
        load_settings(**{field: value}, _env_file=None)
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    assert "invalid Snowflake identifier" in error["msg"]


def test_a_bad_schema_variable_fails_the_job_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("CREDIT_SNOWFLAKE_SCHEMA", "RAW; DROP TABLE x")
    with pytest.raises(SystemExit) as exit_info:
        run_job(lambda: load_settings(_env_file=None) and 0)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid settings: snowflake_schema: ")
    assert "invalid Snowflake identifier 'RAW; DROP TABLE x'" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value", INJECTIONS, ids=INJECTION_IDS)
def test_bad_identifiers_are_refused_where_sql_is_built(tmp_path, value):
    # model_copy(update=...) skips validation: the SQL builders must not rely on it.
    settings = load_settings(data_dir=tmp_path, _env_file=None)
    spec = TABLES["loan_applications"]
    for field, setting in (
        ("snowflake_database", "CREDIT_SNOWFLAKE_DATABASE"),
        ("snowflake_schema", "CREDIT_SNOWFLAKE_SCHEMA"),
    ):
        bad = settings.model_copy(update={field: value})
        with pytest.raises(ConfigError, match=f"invalid Snowflake identifier .* in {setting}"):
            qualified_table(bad, spec.name)
        with pytest.raises(ConfigError, match=setting):
            table_query(bad, spec)
    with pytest.raises(ConfigError, match="in table name"):
        qualified_table(settings, value)


@pytest.mark.parametrize("value", INJECTIONS, ids=INJECTION_IDS)
def test_a_spec_name_is_quoted_whole_or_refused(value):
    """A dataset spec may name columns anything printable (`Times-Late`): such a name is one
    quoted identifier with its quotes doubled, never SQL; anything else is refused."""
    try:
        quoted = quote_source(value)
    except ConfigError as exc:
        assert "invalid Snowflake name" in str(exc)
        assert not value or not value.isprintable() or len(value) > 255
        return
    inner = value.upper() if SNOWFLAKE_IDENTIFIER.fullmatch(value) else value
    assert quoted == '"' + inner.replace('"', '""') + '"'
    sql = SnowflakeResultBatchDatasource(
        "SELECT 1", {}, [], partition_key=value, partitions=2
    )._partition_sql(0)
    assert sql.endswith(f"HASH(q.{quoted})), 2) = 0")


def test_source_names_match_the_tables_columns_in_any_case(tmp_path):
    settings = load_settings(data_dir=tmp_path, _env_file=None)
    spec = TABLES["loan_applications"]
    # As a table created with quoted names holds them: the spec's names match ignoring case.
    found = [c.upper() if c != "creditability" else "Creditability" for c in spec.source_columns]
    sql = table_query(settings, spec, found)
    assert '"Creditability"' in sql and '"APPLICATION_ID"' in sql
    assert quote_source("NumberOfTime30-59DaysPastDueNotWorse") == (
        '"NumberOfTime30-59DaysPastDueNotWorse"'
    )


def test_seeding_refuses_a_bad_schema_before_connecting(planted):
    bad = planted.model_copy(update={"snowflake_schema": "RAW; DROP TABLE x"})
    # A ConfigError, not the SourceError of the closed port: nothing was sent anywhere.
    with pytest.raises(ConfigError, match="CREDIT_SNOWFLAKE_SCHEMA"):
        seed_snowflake({}, TABLES, bad)


@pytest.mark.parametrize(
    ("name", "quoted"),
    [("CREDIT", '"CREDIT"'), ("raw_2024", '"RAW_2024"'), ("A$B", '"A$B"'), ("_x", '"_X"')],
)
def test_valid_identifiers_come_out_quoted(name, quoted):
    assert quote_identifier(name, "CREDIT_SNOWFLAKE_SCHEMA") == quoted
    assert quote_identifier("x" * 255) == f'"{"X" * 255}"'


def test_every_generated_query_quotes_every_identifier(tmp_path):
    settings = load_settings(
        data_dir=tmp_path, snowflake_database="credit", snowflake_schema="raw", _env_file=None
    )
    for spec in TABLES.values():
        columns = ", ".join(f'"{c.upper()}"' for c in spec.source_columns)
        assert table_query(settings, spec) == (
            f'SELECT {columns} FROM "CREDIT"."RAW"."{spec.name.upper()}"'
        )
        source = SnowflakeResultBatchDatasource(
            "SELECT 1", {}, [], partition_key=spec.unique_key[0], partitions=4
        )
        assert f'q."{spec.unique_key[0].upper()}"' in source._partition_sql(3)


@pytest.mark.parametrize("name", ["CREDIT", "raw_2024", "A$B", "_x"])
def test_identifiers_are_upper_cased_and_quoted(name):
    assert quote_identifier(name) == f'"{name.upper()}"'


@pytest.mark.parametrize(
    "name", ['x"; DROP TABLE t; --', "a.b", "1abc", "", "a b", "x" * 300, "tab\tle"]
)
def test_unsafe_identifiers_are_refused(name):
    with pytest.raises(ConfigError, match="invalid Snowflake identifier"):
        quote_identifier(name)


def test_qualified_table_quotes_every_part(tmp_path):
    settings = load_settings(
        data_dir=tmp_path, snowflake_database="credit", snowflake_schema="raw", _env_file=None
    )
    assert qualified_table(settings, "loan_applications") == '"CREDIT"."RAW"."LOAN_APPLICATIONS"'
    with pytest.raises(ValueError, match="snowflake_schema"):
        load_settings(data_dir=tmp_path, snowflake_schema="raw; drop", _env_file=None)
    # A copy with updates skips validation: the query builder checks again.
    bad = settings.model_copy(update={"snowflake_schema": "raw; drop"})
    with pytest.raises(ConfigError, match="CREDIT_SNOWFLAKE_SCHEMA"):
        qualified_table(bad, "loan_applications")


def test_missing_snowflake_settings_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"CREDIT_SNOWFLAKE_ACCOUNT.*CREDIT_SNOWFLAKE_USER"):
        connection_parameters(load_settings(data_dir=tmp_path, _env_file=None))


def test_key_pair_auth_needs_no_password(tmp_path):
    settings = load_settings(
        data_dir=tmp_path,
        snowflake_account="acme-x1",
        snowflake_user="loader",
        snowflake_private_key_path=tmp_path / "key.p8",
        snowflake_private_key_passphrase="pp",
        _env_file=None,
    )
    params = connection_parameters(settings)
    assert params["private_key_file"] == str(tmp_path / "key.p8")
    assert params["private_key_file_pwd"] == "pp"
    assert "password" not in params
