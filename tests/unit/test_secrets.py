"""Credentials never in printouts, error messages, retraining jobs' environment or the
prediction log."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings, load_settings
from app.data.snowflake import (
    connect,
    connection_parameters,
)
from app.errors import CreditRiskError
from app.localservices import free_port
from app.runtime import run_job
from tests.utils.datasets import german
from tests.utils.secrets import PG_PASSWORD, REDIS_PASSWORD, SF_PASSWORD, assert_no_secret


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
    from app.monitoring.retrain import settings_env

    env = settings_env(planted)
    assert "CREDIT_SNOWFLAKE_PASSWORD" not in env and "CREDIT_REDIS_PASSWORD" not in env
    assert "CREDIT_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE" not in env
    assert env["CREDIT_REDIS_PORT"] == str(planted.redis_port)
    for name, value in env.items():
        if name != "CREDIT_MLFLOW_TRACKING_URI":
            assert_no_secret(value)


def test_retraining_jobs_get_no_database_password(planted):
    from app.monitoring.retrain import settings_env

    assert_no_secret(str(settings_env(planted)))


def test_prediction_log_holds_no_settings():
    from app.predictions.schema import schema_for

    names = set(schema_for(german()).names)
    # Decision metadata and model features only: nothing a setting (or credential) could fill.
    assert names & set(Settings.model_fields) <= {"model_name"}
    assert not [n for n in names if any(w in n for w in ("password", "secret", "uri", "key_"))]
