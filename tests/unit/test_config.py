"""Settings: env prefix, derived paths, secrets never shown; Snowflake identifiers quoted safely."""

import pytest

from app.config import Settings, load_settings
from app.data.snowflake import connection_parameters, qualified_table, quote_identifier
from app.errors import ConfigError


def test_env_prefix_and_derived_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("CREDIT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CREDIT_ONLINE_STORE", "redis")
    settings = Settings(_env_file=None)
    assert settings.online_store == "redis"
    assert settings.offline_dir == tmp_path / "offline"
    assert settings.local_source_dir == tmp_path / "source"
    assert settings.feast_dir == tmp_path / "feast"


def test_dotenv_file_is_read(tmp_path):
    env = tmp_path / ".env"
    env.write_text("CREDIT_FEAST_PROJECT=from_dotenv\n")
    assert Settings(_env_file=env).feast_project == "from_dotenv"


def test_secrets_are_masked_everywhere(tmp_path):
    settings = load_settings(
        data_dir=tmp_path,
        snowflake_password="planted-secret-pw",
        redis_password="planted-redis-pw",
        _env_file=None,
    )
    for shown in (repr(settings), str(settings), str(settings.describe())):
        assert "planted-secret-pw" not in shown
        assert "planted-redis-pw" not in shown
    assert settings.describe()["snowflake_password"] == "********"


def test_invalid_value_is_rejected():
    with pytest.raises(ValueError, match="online_store"):
        Settings(online_store="memcached", _env_file=None)


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
    bad = load_settings(data_dir=tmp_path, snowflake_schema="raw; drop", _env_file=None)
    with pytest.raises(ConfigError):
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
