"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest

from app.config import Settings, load_settings
from app.localservices import free_port
from tests.utils.secrets import PG_PASSWORD, REDIS_PASSWORD, SF_PASSPHRASE, SF_PASSWORD


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
