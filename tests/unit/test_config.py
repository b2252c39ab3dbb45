"""Settings: env prefix, derived paths, secrets never shown; Snowflake identifiers quoted safely;
the production fields (MLflow, Redis) and `.env.example`."""

import re
from pathlib import Path

import pytest

from app.config import ENV_PREFIX, Settings, load_settings


def test_env_prefix_and_derived_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("CREDIT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CREDIT_ONLINE_STORE", "redis")
    settings = Settings(_env_file=None)
    assert settings.online_store == "redis"
    assert settings.offline_dir == tmp_path / "offline"
    assert settings.local_source_dir == tmp_path / "source"
    assert settings.feast_dir == tmp_path / "feast"


def test_cluster_settings_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CREDIT_DATA_DIR", str(tmp_path))
    assert Settings(_env_file=None).train_storage == str(tmp_path / "ray_results")
    monkeypatch.setenv("CREDIT_TRAIN_STORAGE", "s3://bucket/ray_results")
    monkeypatch.setenv("CREDIT_TRAIN_WORKER_RESOURCES", '{"train_slot": 1}')
    monkeypatch.setenv("CREDIT_INGEST_READ_RESOURCES", '{"warehouse": 0.5}')
    monkeypatch.setenv("CREDIT_FEAST_REGISTRY", "postgresql+psycopg://feast:pw@db:5432/feast")
    settings = Settings(_env_file=None)
    assert settings.train_storage == "s3://bucket/ray_results"
    assert settings.train_worker_resources == {"train_slot": 1.0}
    assert settings.ingest_read_resources == {"warehouse": 0.5}
    assert ":pw@" not in str(settings) and ":pw@" not in str(settings.describe())


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


# --- production settings: MLflow, Redis ----------------------------------------------------


def test_local_artifact_root_keeps_its_behaviour(tmp_path):
    default = load_settings(data_dir=tmp_path, _env_file=None)
    assert default.mlflow_artifact_root == tmp_path / "mlartifacts"
    assert default.mlflow_artifact_location == (tmp_path / "mlartifacts").as_uri()
    assert default.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    explicit = load_settings(
        data_dir=tmp_path, mlflow_artifact_root=str(tmp_path / "a"), _env_file=None
    )
    assert explicit.mlflow_artifact_root == tmp_path / "a"
    from_uri = load_settings(
        data_dir=tmp_path, mlflow_artifact_root=(tmp_path / "b").as_uri(), _env_file=None
    )
    assert from_uri.mlflow_artifact_root == tmp_path / "b"


@pytest.mark.parametrize(
    "root", ["s3://ml-bucket/credit", "gs://b/p", "mlflow-artifacts:/credit", "wasbs://c@a/p"]
)
def test_artifact_root_accepts_uris_mlflow_stores(tmp_path, root):
    settings = load_settings(data_dir=tmp_path, mlflow_artifact_root=root, _env_file=None)
    assert settings.mlflow_artifact_root == root
    assert settings.mlflow_artifact_location == root


def test_artifact_schemes_are_ones_mlflow_can_store_to():
    from mlflow.store.artifact.artifact_repository_registry import (
        _artifact_repository_registry,
    )

    from app.settings.training import ARTIFACT_URI_SCHEMES

    assert set(_artifact_repository_registry._registry) >= ARTIFACT_URI_SCHEMES


def test_unknown_artifact_store_is_rejected(tmp_path):
    with pytest.raises(
        ValueError, match=r"mlflow_artifact_root\s+Value error, unsupported artifact store"
    ):
        load_settings(data_dir=tmp_path, mlflow_artifact_root="nfs://x/y", _env_file=None)


def test_a_tracking_server_chooses_the_artifact_location(tmp_path):
    settings = load_settings(
        data_dir=tmp_path, mlflow_tracking_uri="http://mlflow:5000", _env_file=None
    )
    # None: the experiment gets the server's default (`mlflow-artifacts:/`, proxied to its
    # --artifacts-destination), readable from every node.
    assert settings.mlflow_artifact_root is None
    assert settings.mlflow_artifact_location is None


def test_postgres_tracking_uri_keeps_the_local_artifact_root(tmp_path):
    uri = "postgresql+psycopg://mlflow@db:5432/mlflow"
    settings = load_settings(data_dir=tmp_path, mlflow_tracking_uri=uri, _env_file=None)
    assert settings.mlflow_tracking_uri == uri
    assert settings.mlflow_artifact_root == tmp_path / "mlartifacts"


def test_tracking_uri_checks(tmp_path):
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_PASSWORD") as caught:
        load_settings(mlflow_tracking_uri="http://alice:hunter22@mlflow:5000", _env_file=None)
    assert "hunter22" not in str(caught.value)
    with pytest.raises(ValueError, match=r"postgresql\+psycopg://"):
        load_settings(mlflow_tracking_uri="postgresql://mlflow@db/mlflow", _env_file=None)
    blank = load_settings(data_dir=tmp_path, mlflow_tracking_uri=" ", _env_file=None)
    assert blank.mlflow_tracking_uri.startswith("sqlite:///")


def test_redis_settings_build_feasts_connection_string(tmp_path):
    settings = load_settings(
        data_dir=tmp_path,
        online_store="redis",
        redis_host="redis.internal",
        redis_port=6380,
        redis_db=2,
        redis_password="pw",
        _env_file=None,
    )
    # Feast passes every `key=value` to redis.Redis(): the timeouts reach its client.
    assert settings.redis_connection_string == (
        "redis.internal:6380,db=2,socket_timeout=5,socket_connect_timeout=5,password=pw"
    )
    # Not cached: a copy with another port must not keep the first one's string.
    moved = settings.model_copy(update={"redis_port": 7000})
    assert moved.redis_connection_string.startswith("redis.internal:7000,")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redis_port", 0),
        ("redis_port", 70000),
        ("redis_db", -1),
        ("redis_host", "redis:6379"),
        ("redis_host", "a,b"),
        ("redis_password", "a,b"),
        ("snowflake_port", 0),
        ("calibration_grades", [0.2, 0.1]),
        ("calibration_grades", [0.1, 1.5]),
        ("calibration_grades", []),
        ("calibration_confidence", 1.0),
    ],
)
def test_bad_production_values_are_named(field, value):
    with pytest.raises(ValueError, match=field) as caught:
        load_settings(**{field: value}, _env_file=None)
    if field == "redis_password":
        assert "a,b" not in str(caught.value)


# --- .env.example ---------------------------------------------------------------------------

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
_ASSIGNMENT = re.compile(r"^#?\s*(CREDIT_[A-Z0-9_]+)=")


def _example_variables(active_only: bool = False) -> list[str]:
    """Variables assigned in .env.example; commented-out ones too unless `active_only`."""
    return [
        m.group(1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if (m := _ASSIGNMENT.match(line.strip())) and not (active_only and line.startswith("#"))
    ]


def test_env_example_names_only_real_settings():
    names = _example_variables()
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    assert names and not set(names) - fields, sorted(set(names) - fields)
    active = _example_variables(active_only=True)
    assert len(active) == len(set(active)), "a variable is set twice"
    production = {
        "CREDIT_SOURCE",
        "CREDIT_SNOWFLAKE_ACCOUNT",
        "CREDIT_SNOWFLAKE_PASSWORD",
        "CREDIT_ONLINE_STORE",
        "CREDIT_REDIS_HOST",
        "CREDIT_REDIS_PASSWORD",
        "CREDIT_MLFLOW_TRACKING_URI",
        "CREDIT_MLFLOW_ARTIFACT_ROOT",
        "CREDIT_RAY_ADDRESS",
        "CREDIT_PREDICTION_LOG_DIR",
        "CREDIT_MONITOR_DIR",
        "CREDIT_FEAST_REGISTRY",
        "CREDIT_OFFLINE_DIR",
        "CREDIT_TRAIN_STORAGE",
        "CREDIT_API_KEYS_FILE",
    }
    assert production <= set(names)


def test_env_example_loads_into_settings():
    settings = load_settings(_env_file=ENV_EXAMPLE)
    assert settings.source == "snowflake"
    assert settings.online_store == "redis"
    assert settings.mlflow_tracking_uri.startswith("http")
    # Placeholders only: every secret is left commented out.
    assert settings.snowflake_password is None and settings.redis_password is None
    text = ENV_EXAMPLE.read_text()
    assert "mlflow server --backend-store-uri postgresql+psycopg://" in text
    assert "--artifacts-destination" in text
