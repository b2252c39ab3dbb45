"""Security: Snowflake identifiers validated and quoted, never interpolated raw; credentials
never in printouts, error messages, retraining jobs' environment or the prediction log."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings, load_settings
from app.data.schema import TABLES
from app.data.snowflake import (
    SnowflakeResultBatchDatasource,
    connect,
    connection_parameters,
    qualified_table,
    quote_identifier,
    seed_snowflake,
    table_query,
)
from app.errors import ConfigError, CreditRiskError
from app.localservices import free_port
from app.runtime import run_job

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

SF_PASSWORD = "planted-sf-pw-7f3a"
SF_PASSPHRASE = "planted-sf-passphrase-5d1e"
REDIS_PASSWORD = "planted-redis-pw-91c2"
PG_PASSWORD = "planted-pg-pw-c0de"
SECRETS = (SF_PASSWORD, SF_PASSPHRASE, REDIS_PASSWORD, PG_PASSWORD)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} leaked into: {text[:400]}"


@pytest.fixture
def planted(tmp_path) -> Settings:
    """Settings carrying every kind of credential, pointed at closed ports."""
    return load_settings(
        data_dir=tmp_path,
        source="snowflake",
        snowflake_account="acme-x1",
        snowflake_user="loader",
        snowflake_password=SF_PASSWORD,
        snowflake_private_key_passphrase=SF_PASSPHRASE,
        snowflake_host="127.0.0.1",
        snowflake_port=free_port(),
        snowflake_protocol="http",
        snowflake_login_timeout=1,
        online_store="redis",
        redis_port=free_port(),
        redis_password=REDIS_PASSWORD,
        mlflow_tracking_uri=f"postgresql+psycopg://mlflow:{PG_PASSWORD}@127.0.0.1:1/mlflow",
        _env_file=None,
    )


# --- Snowflake identifiers ------------------------------------------------------------------


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
    with pytest.raises(ConfigError, match="in partition key"):
        SnowflakeResultBatchDatasource(
            "SELECT 1", {}, [], partition_key=value, partitions=2
        )._partition_sql(0)


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
        columns = ", ".join(f'"{c.upper()}"' for c in spec.columns)
        assert table_query(settings, spec) == (
            f'SELECT {columns} FROM "CREDIT"."RAW"."{spec.name.upper()}"'
        )
        source = SnowflakeResultBatchDatasource(
            "SELECT 1", {}, [], partition_key=spec.unique_key[0], partitions=4
        )
        assert f'q."{spec.unique_key[0].upper()}"' in source._partition_sql(3)


# --- credentials never shown ----------------------------------------------------------------


def test_settings_printouts_mask_every_secret(planted):
    shown = planted.describe()
    for text in (repr(planted), str(planted), str(shown), f"{planted}"):
        assert_no_secret(text)
    assert shown["snowflake_password"] == shown["redis_password"] == "********"
    # The tracking URI stays useful: everything but the password.
    assert shown["mlflow_tracking_uri"] == (
        "postgresql+psycopg://mlflow:********@127.0.0.1:1/mlflow"
    )
    assert_no_secret(planted.redact(f"boom {SF_PASSWORD} {REDIS_PASSWORD} {PG_PASSWORD}"))


def test_validation_errors_never_echo_a_secret(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValidationError) as caught:
        load_settings(
            mlflow_tracking_uri=f"http://alice:{PG_PASSWORD}@mlflow:5000",
            redis_password=f"{REDIS_PASSWORD},x",
            _env_file=None,
        )
    # (errors() keeps the inputs for code; str() and the job's one line never show them.)
    assert_no_secret(str(caught.value))
    monkeypatch.setenv("CREDIT_MLFLOW_TRACKING_URI", f"https://alice:{PG_PASSWORD}@mlflow")
    with pytest.raises(SystemExit):
        run_job(lambda: load_settings(_env_file=None) and 0)
    err = capsys.readouterr().err
    assert "mlflow_tracking_uri" in err and "MLFLOW_TRACKING_PASSWORD" in err
    assert_no_secret(err)


def test_unreachable_redis_error_has_no_password(planted):
    from app.features.store import check_online_store

    with pytest.raises(CreditRiskError, match=r"Redis online store at 127\.0\.0\.1") as caught:
        check_online_store(planted)
    assert_no_secret(str(caught.value))


def test_unreachable_snowflake_error_has_no_password(planted):
    params = connection_parameters(planted)
    with (
        pytest.raises(CreditRiskError, match=r"Snowflake at 127\.0\.0\.1") as caught,
        connect(params),
    ):
        pass
    assert_no_secret(str(caught.value))


def test_unreachable_mlflow_error_has_no_password(planted):
    from app.training import registry

    # Settings refuse a password in an http URI; a copy skips that check, and the error of the
    # failed request (which quotes the URL it called) must still be masked.
    port = free_port()
    down = planted.model_copy(
        update={"mlflow_tracking_uri": f"http://alice:{PG_PASSWORD}@127.0.0.1:{port}"}
    )
    with pytest.raises(registry.RegistryError, match="is unreachable") as caught:
        registry.client(down)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert_no_secret(str(caught.value))


def test_retraining_jobs_get_no_secret_fields(planted):
    from app.monitoring.jobs import settings_env

    env = settings_env(planted)
    assert "CREDIT_SNOWFLAKE_PASSWORD" not in env and "CREDIT_REDIS_PASSWORD" not in env
    assert "CREDIT_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE" not in env
    assert env["CREDIT_REDIS_PORT"] == str(planted.redis_port)
    for name, value in env.items():
        if name != "CREDIT_MLFLOW_TRACKING_URI":
            assert_no_secret(value)


def test_retraining_jobs_get_no_database_password(planted):
    from app.monitoring.jobs import settings_env

    assert_no_secret(str(settings_env(planted)))


def test_prediction_log_holds_no_settings():
    from app.predictions.log import log_schema

    names = set(log_schema().names)
    # Decision metadata and model features only: nothing a setting (or credential) could fill.
    assert names & set(Settings.model_fields) <= {"model_name"}
    assert not [n for n in names if any(w in n for w in ("password", "secret", "uri", "key_"))]
