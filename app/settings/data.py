"""Settings of the data side: where things live, the source (local files or Snowflake), the
feature store and Ray. Fields only; app.config.Settings combines the groups."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DATA_PATH = PROJECT_ROOT / "data" / "raw" / "german_credit.csv"
SHIPPED_DATASET = PROJECT_ROOT / "datasets" / "german_credit"

# Unquoted Snowflake identifiers: ASCII letters, digits, `_` and `$`, not starting with a digit,
# at most 255 characters. Checked with fullmatch (a `$` anchor would let a trailing newline in).
SNOWFLAKE_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,254}")


class DataSettings(BaseModel):
    # --- the data ----------------------------------------------------------------------
    dataset: Path = Field(
        SHIPPED_DATASET,
        description="Dataset spec: a `dataset.yaml`, or a directory holding one (README, "
        '"Bring your own data").',
    )

    # --- where things live -------------------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Root of everything the jobs write.")
    raw_data_path: Path | None = Field(
        None,
        description="The dataset as one flat file (CSV or Parquet) for `jobs.seed` and the "
        "embedded default; default: the spec's `sources.flat_file.path`.",
    )
    local_source_dir: Path | None = Field(
        None, description="Warehouse tables as local files (default: `<data_dir>/source`)."
    )
    offline_dir: Path | None = Field(
        None, description="Offline snapshots and rejects (default: `<data_dir>/offline`)."
    )
    feast_dir: Path | None = Field(
        None, description="Feast registry and SQLite online store (default: `<data_dir>/feast`)."
    )

    # --- source ------------------------------------------------------------------------
    source: Literal["local", "snowflake"] = Field("local", description="Where ingest reads.")
    snowflake_account: str | None = Field(None, description="Account identifier (`orgname-acct`).")
    snowflake_user: str | None = Field(None, description="Login name.")
    snowflake_password: SecretStr | None = Field(None, description="Password (never logged).")
    snowflake_private_key_path: Path | None = Field(
        None, description="PEM private key for key-pair auth (instead of a password)."
    )
    snowflake_private_key_passphrase: SecretStr | None = Field(
        None, description="Passphrase of an encrypted private key."
    )
    snowflake_warehouse: str | None = Field(None, description="Virtual warehouse for queries.")
    snowflake_database: str = Field("CREDIT", description="Database of the source tables.")
    snowflake_schema: str = Field("RAW", description="Schema of the source tables.")
    snowflake_role: str | None = Field(None, description="Role to assume.")
    snowflake_host: str | None = Field(
        None, description="Only for a Snowflake-compatible server (e.g. fakesnow) or a proxy."
    )
    snowflake_port: int | None = Field(None, ge=1, le=65535, description="Port of that server.")
    snowflake_protocol: Literal["https", "http"] = Field(
        "https", description="`http` only for a local Snowflake-compatible server."
    )
    snowflake_login_timeout: int = Field(30, ge=1, description="Seconds before giving up on login.")
    snowflake_queries: dict[str, str] = Field(
        default_factory=dict,
        description="Per-table SQL overriding `SELECT * FROM <db>.<schema>.<TABLE>` (JSON).",
    )
    snowflake_read_partitions: int = Field(
        1,
        ge=1,
        description="Split each table into N hash partitions of its key, read by N parallel "
        "queries; helps when the server returns few result batches.",
    )
    snowflake_read_mode: Literal["result_batches", "read_snowflake"] = Field(
        "result_batches",
        description="`result_batches`: Arrow result batches spread over Ray tasks (fast); "
        "`read_snowflake`: Ray's built-in reader (kept for comparison).",
    )

    # --- feature store -----------------------------------------------------------------
    feast_project: str = Field("credit_risk", description="Feast project name.")
    feast_registry: str | None = Field(
        None,
        description="Feast's SQL registry, a SQLAlchemy URL (`postgresql+psycopg://...`) every "
        "node reaches; default a file in feast_dir, which only its own machine sees.",
    )
    online_store: Literal["sqlite", "redis"] = Field(
        "sqlite", description="Feast online store: embedded SQLite file or Redis."
    )
    redis_host: str = Field(
        "127.0.0.1", pattern=r"^[A-Za-z0-9_.-]+$", description="Redis online store host."
    )
    redis_port: int = Field(6379, ge=1, le=65535, description="Redis online store port.")
    redis_db: int = Field(0, ge=0, description="Redis database number.")
    redis_password: SecretStr | None = Field(None, description="Redis password (never logged).")
    redis_timeout_seconds: float = Field(
        5,
        gt=0,
        description="Connect and socket timeout of Feast's Redis client (jobs); the decision "
        "path's own reader gives up after 1 s.",
    )
    feature_service_name: str = Field(
        "credit_risk_v1", description="FeatureService the model version is trained and served on."
    )

    # --- Ray ---------------------------------------------------------------------------
    ray_address: str | None = Field(
        None,
        description="Cluster to join (`auto`, `ray://...`); unset: RAY_ADDRESS or a new local Ray.",
    )
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs for a new local Ray.")
    serve_ingress: Literal["haproxy", "proxy"] = Field(
        "haproxy",
        description="HTTP ingress of a local Ray this project starts: Ray Serve's HAProxy in "
        "front of the replicas (throughput-optimized mode) or Serve's Python proxy. A cluster "
        "started with `ray start` takes it from that shell's RAY_SERVE_* variables instead.",
    )
    serve_haproxy_threads: int = Field(
        1, ge=1, description="HAProxy threads (RAY_SERVE_HAPROXY_NBTHREAD); 1 suits 2 cores."
    )
    ingest_parallelism: int = Field(
        -1, description="Read tasks for ingest; -1 lets Ray Data choose."
    )
    ingest_read_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each ingest read task needs, placing the reads on "
        'the nodes that have them (JSON, e.g. `{"warehouse": 1}`).',
    )

    @field_validator("snowflake_database", "snowflake_schema")
    @classmethod
    def _check_identifier(cls, value: str) -> str:
        if not SNOWFLAKE_IDENTIFIER.fullmatch(value):
            raise ValueError(
                f"invalid Snowflake identifier {value[:60]!r}: use ASCII letters, digits, _ or $, "
                "not starting with a digit, at most 255 characters"
            )
        return value

    @field_validator("redis_password")
    @classmethod
    def _check_redis_password(cls, value: SecretStr | None) -> SecretStr | None:
        # Feast takes Redis settings as one `host:port,db=N,password=...` string split on commas.
        if value is not None and "," in value.get_secret_value():
            raise ValueError("a Redis password with a comma cannot be passed to Feast")
        return value

    @field_validator("snowflake_queries", mode="before")
    @classmethod
    def _lower_table_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k).lower(): v for k, v in value.items()}
        return value
