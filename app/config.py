"""One typed settings object: every path, URI, credential, port and worker count lives here."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "CREDIT_"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DATA_PATH = PROJECT_ROOT / "data" / "raw" / "german_credit.csv"

# Unquoted Snowflake identifiers: ASCII letters, digits, `_` and `$`, not starting with a digit,
# at most 255 characters. Checked with fullmatch (a `$` anchor would let a trailing newline in).
SNOWFLAKE_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,254}")
# Artifact stores MLflow 3 can write a new experiment to (its artifact repository registry,
# less `runs:`/`models:`, which name existing artifacts rather than a root).
ARTIFACT_URI_SCHEMES = frozenset(
    {
        "abfss",
        "b2",
        "dbfs",
        "file",
        "ftp",
        "gs",
        "hdfs",
        "http",
        "https",
        "mlflow-artifacts",
        "r2",
        "s3",
        "sftp",
        "viewfs",
        "wasbs",
    }
)
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
# `scheme://user:password@` anywhere in a text, and libpq's `password=` parameter.
_URI_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^\s/]*@")
_PARAM_PASSWORD = re.compile(r"((?:^|[?&;\s])password=)[^&\s]*", re.IGNORECASE)
MASK = "********"


def mask_credentials(text: str) -> str:
    """The text with passwords inside URIs (`scheme://user:pw@`, `?password=`) masked."""
    return _PARAM_PASSWORD.sub(rf"\1{MASK}", _URI_PASSWORD.sub(rf"\1:{MASK}@", text))


class Settings(BaseSettings):
    """Read from `CREDIT_*` environment variables and an optional `.env` file.

    Paths left unset are derived from `data_dir`, so pointing one variable elsewhere moves
    everything the jobs write.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        # A rejected value may be a secret (a password in a URI): never echo inputs in errors.
        hide_input_in_errors=True,
    )

    # --- where things live -------------------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Root of everything the jobs write.")
    raw_data_path: Path = Field(SHIPPED_DATA_PATH, description="Shipped German credit CSV.")
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

    # --- training and registry ---------------------------------------------------------
    mlflow_tracking_uri: str | None = Field(
        None,
        description="MLflow tracking and registry URI (default: SQLite file "
        "`<data_dir>/mlflow.db`; `http://host:5000` for an `mlflow server`, or "
        "`postgresql+psycopg://user@host:5432/db` directly). No password in an `http(s)` URI: "
        "use MLflow's `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`.",
    )
    mlflow_artifact_root: Path | str | None = Field(
        None,
        description="Artifact location for new experiments: a local path or a URI "
        "(`s3://...`, `gs://...`, `mlflow-artifacts:/...`); default `<data_dir>/mlartifacts`, "
        "or, with an `http(s)` tracking URI, the server's `--artifacts-destination`.",
    )
    mlflow_experiment: str = Field("credit-risk", description="MLflow experiment name.")
    model_name: str = Field("credit_risk", description="Registered model name.")
    train_workers: int = Field(2, ge=1, description="Ray Train workers for XGBoost.")
    train_max_failures: int = Field(
        2, ge=-1, description="Worker-group restarts after a lost worker (-1: unlimited)."
    )
    train_cpus_per_worker: float = Field(
        1.0, gt=0, description="CPUs each training worker reserves."
    )
    split_method: Literal["random", "out_of_time"] = Field(
        "random",
        description="`random` (seeded, stratified) or `out_of_time` (train on older "
        "applications, validate and test on newer ones).",
    )
    validation_fraction: float = Field(0.2, gt=0, lt=0.5, description="Share for validation.")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="Share held out for test.")
    xgb_params: dict[str, Any] = Field(
        default_factory=lambda: {
            "max_depth": 3,
            "eta": 0.05,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "min_child_weight": 1,
            "lambda": 2.0,
        },
        description="XGBoost booster parameters (JSON).",
    )
    num_boost_round: int = Field(1000, ge=1, description="Maximum boosting rounds.")
    early_stopping_rounds: int = Field(100, ge=1, description="Stop after N rounds w/o gain.")
    monotone_constraints: dict[str, int] = Field(
        default_factory=lambda: {"duration_in_month": 1, "age_in_years": -1},
        description="Raw numeric feature -> +1 (PD rises with it) or -1 (JSON).",
    )
    decision_threshold: float = Field(
        1 / 6,
        gt=0,
        lt=1,
        description="Decline when PD >= this; 1/6 is cost-optimal for the data's 5:1 cost of "
        "approving a bad vs declining a good applicant.",
    )
    gate_min_auc: float = Field(0.70, description="Gate: minimum test AUC for a challenger.")
    gate_max_brier: float = Field(0.25, description="Gate: maximum test Brier score.")
    gate_min_approval_ratio: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Gate: minimum approval-rate ratio across age bands (0.8 = four-fifths "
        "rule; 0 disables).",
    )
    promote_min_auc_gain: float = Field(
        0.005, description="Challenger must beat the champion's test AUC by this to promote."
    )

    seed: int = Field(42, description="Seed for ids, timestamps, splits and synthetic data.")
    serve_max_tag_traffic: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Largest A/B weight a version's registry `traffic` tag may give a "
        "challenger without a redeploy; a larger one is ignored (and shown on /readyz). "
        "`shadow` is always honoured.",
    )

    # --- serving ---------------------------------------------------------------------------
    prediction_log_dir: Path | None = Field(
        None,
        description="The prediction log, the lender's decision record: Parquet parts "
        "`date=YYYY-MM-DD/part-*.parquet` plus each replica's append-only journal `_journal/` "
        "(default: `<data_dir>/predictions`). Personal data: per decision the applicant id, the "
        "raw features the model saw (age, employment, job, housing, property, telephone, "
        "checking and savings status, credit history, credit amount, duration, purpose, "
        "dependants, ...), PD, decision, reason codes, model version and the caller's key id; "
        "kept until `jobs.retention` deletes it (prediction_log_retention_days).",
    )
    serve_store_unhealthy_seconds: float = Field(
        30,
        gt=0,
        description="A replica whose online store has been unreachable or hung this long "
        "fails Serve's health check, so Serve replaces it (meanwhile it answers 503 at once).",
    )
    serve_retry_after_seconds: int = Field(
        5, ge=1, description="Retry-After sent with a 503 (feature store or model unavailable)."
    )
    idempotency_ttl_seconds: float = Field(
        86_400, gt=0, description="How long an answer is replayed for its Idempotency-Key."
    )
    idempotency_claim_seconds: float = Field(
        30,
        gt=0,
        description="How long an unanswered Idempotency-Key stays claimed (a retry meanwhile "
        "gets 409); a replica lost mid-request frees its keys after this.",
    )
    prediction_log_fsync_seconds: float = Field(
        1.0,
        gt=0,
        description="Prediction log: fsync each replica's journal this often. A killed "
        "replica loses no answered decision (each batch is written before its answers leave); "
        "a crash of the machine itself can lose at most about this many seconds of them.",
    )
    prediction_log_max_pending: int = Field(
        100_000,
        ge=1,
        description="Prediction log: records a replica holds in memory while the disk refuses "
        "writes (retried with backoff); beyond it the oldest are dropped and counted "
        "(`credit_prediction_log_dropped_total`).",
    )
    prediction_log_retention_days: int = Field(
        365,
        ge=0,
        description="`python -m jobs.retention` (run it daily) deletes prediction-log days "
        "older than this many days, and records what it removed in `_retention.jsonl`.",
    )

    # --- API access (app/serving/auth.py, guard.py) ------------------------------------------
    api_auth: Literal["enabled", "disabled"] = Field(
        "enabled",
        description="Bearer-token authentication on every `/v1/*` route (`/healthz`, `/readyz` "
        "stay open). `disabled` is for development only and is logged as a warning at every "
        "start.",
    )
    api_keys_file: Path | None = Field(
        None,
        description="API keys as SHA-256 hashes with their scopes, written by `python -m "
        "jobs.api_keys`; re-read when it changes, so keys rotate without a restart (default: "
        "`<data_dir>/api_keys.json`; on a cluster, a path every node can read).",
    )
    api_jwt_issuer: str | None = Field(
        None, description="Also accept JWTs from this issuer (`iss`); unset: API keys only."
    )
    api_jwt_audience: str | None = Field(None, description="Required `aud` of those JWTs.")
    api_jwt_key_file: Path | None = Field(
        None,
        description="The issuer's PEM public key (or, for HS256, a shared secret) in a file; "
        "re-read when it changes.",
    )
    api_jwt_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"], description="Accepted JWT algorithms (JSON)."
    )
    api_rate_per_second: float = Field(
        100,
        ge=0,
        description="Requests per second each caller may send to each replica on average "
        "(a key's own `rate_per_second` wins; 0 = no limit); over it: 429 + Retry-After.",
    )
    api_rate_burst: int = Field(200, ge=1, description="Requests a caller may send at once.")
    api_max_body_bytes: int = Field(
        262_144,
        ge=1024,
        description="Largest request body; a larger one gets 413 before it is parsed.",
    )

    # --- monitoring ------------------------------------------------------------------------
    monitor_dir: Path | None = Field(
        None,
        description="Drift results (JSON), HTML reports and the monitor's spool "
        "(default: `<data_dir>/monitoring`).",
    )
    monitor_enabled: bool = Field(
        True, description="Serving feeds live feature rows to the drift monitor actor."
    )
    monitor_actor_name: str = Field("credit_drift_monitor", description="Named Ray actor.")
    monitor_namespace: str = Field("credit_risk", description="Ray namespace of that actor.")
    monitor_cpus: float = Field(0.25, ge=0, description="CPUs the drift monitor reserves.")
    monitor_check_rows: int = Field(
        1000, ge=1, description="Run a drift check when this many new rows are buffered."
    )
    monitor_check_seconds: float = Field(
        300, gt=0, description="... or this often, if at least monitor_min_rows are buffered."
    )
    monitor_min_rows: int = Field(
        500, ge=1, description="Smallest window checked (smaller ones are mostly noise)."
    )
    monitor_cpu_budget: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of one core the drift checks may use on average: a check that took "
        "c CPU seconds holds the next back for c / budget seconds (0 = no limit).",
    )
    monitor_max_rows_per_second: float = Field(
        100,
        ge=0,
        description="Rows per second each replica sends the monitor; above it a random sample "
        "at this rate is sent, its rate reported in each drift result (0 = every row).",
    )
    monitor_max_buffer_rows: int = Field(
        200_000, ge=1, description="Rows the monitor holds; beyond it the oldest are dropped."
    )
    monitor_num_method: str = Field("wasserstein", description="Evidently method, numbers.")
    monitor_num_threshold: float = Field(0.15, gt=0, description="Its drift threshold.")
    monitor_cat_method: str = Field("jensenshannon", description="Evidently method, categories.")
    monitor_cat_threshold: float = Field(0.1, gt=0, description="Its drift threshold.")
    monitor_min_drifted_features: int = Field(
        1, ge=1, description="Dataset drift when at least this many features drift."
    )
    monitor_max_rows: int = Field(
        20_000, ge=100, description="Larger windows are sampled down to this for a check."
    )
    monitor_keep_reports: int = Field(20, ge=1, description="HTML reports kept on disk.")
    retrain_after_checks: int = Field(
        0,
        ge=0,
        description="Submit retraining (Ray Jobs API) after this many consecutive drifted "
        "checks; 0 = never.",
    )
    retrain_jobs_address: str | None = Field(
        None,
        description="Ray dashboard URL for job submission (default: this cluster's dashboard).",
    )
    retrain_entrypoint: str | None = Field(
        None, description="Job command (default: `<cluster python> -m jobs.retrain`)."
    )
    retrain_challenger_traffic: str = Field(
        "shadow",
        pattern=r"^(shadow|none|0?\.[0-9]+)$",
        description="Traffic a drift-retrained challenger gets: `shadow`, `none` or an A/B "
        "weight such as `0.05` (a registry tag serving honours).",
    )
    retrain_auto_promote: bool = Field(
        False,
        description="After retraining, promote through the promotion gate (never without it).",
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

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _check_tracking_uri(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.password is not None:
            # MLflow prints the tracking URI in every run link it writes to stdout.
            raise ValueError(
                "an http(s) tracking URI must not embed a password: set MLFLOW_TRACKING_USERNAME "
                "and MLFLOW_TRACKING_PASSWORD instead"
            )
        if (
            parts.scheme in ("postgresql", "postgres")
            and importlib.util.find_spec("psycopg2") is None
        ):
            raise ValueError(
                "a PostgreSQL tracking URI needs the psycopg 3 driver: "
                "postgresql+psycopg://user@host:5432/db"
            )
        return value

    @field_validator("mlflow_artifact_root", mode="before")
    @classmethod
    def _check_artifact_root(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if not value:
            return None
        match = _URI_SCHEME.match(value)
        if match is None:
            return Path(value)
        scheme = match.group(1).lower()
        if scheme == "file":
            return Path(urlsplit(value).path)
        if scheme not in ARTIFACT_URI_SCHEMES:
            raise ValueError(
                f"unsupported artifact store {scheme!r}: use a local path or one of "
                + ", ".join(f"{s}:" for s in sorted(ARTIFACT_URI_SCHEMES))
            )
        return value

    @field_validator("snowflake_queries", mode="before")
    @classmethod
    def _lower_table_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k).lower(): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        self.local_source_dir = _resolve(self.local_source_dir, self.data_dir / "source")
        self.offline_dir = _resolve(self.offline_dir, self.data_dir / "offline")
        self.feast_dir = _resolve(self.feast_dir, self.data_dir / "feast")
        self.raw_data_path = self.raw_data_path.expanduser().resolve()
        self.prediction_log_dir = _resolve(self.prediction_log_dir, self.data_dir / "predictions")
        self.api_keys_file = _resolve(self.api_keys_file, self.data_dir / "api_keys.json")
        if self.api_jwt_issuer and self.api_jwt_key_file is None:
            raise ValueError("api_jwt_issuer needs api_jwt_key_file (the issuer's public key)")
        self.monitor_dir = _resolve(self.monitor_dir, self.data_dir / "monitoring")
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = f"sqlite:///{self.data_dir / 'mlflow.db'}"
        if isinstance(self.mlflow_artifact_root, Path):
            self.mlflow_artifact_root = self.mlflow_artifact_root.expanduser().resolve()
        elif self.mlflow_artifact_root is None and not self.mlflow_tracking_uri.startswith(
            ("http://", "https://")
        ):
            # A tracking server picks the location itself (`--artifacts-destination`, proxied
            # as `mlflow-artifacts:/`), so every node reads artifacts through it; a database
            # URI leaves it to us.
            self.mlflow_artifact_root = self.data_dir / "mlartifacts"
        return self

    @property
    def mlflow_artifact_location(self) -> str | None:
        """`artifact_location` for a new experiment: a URI, or None for the server's default."""
        root = self.mlflow_artifact_root
        if isinstance(root, Path):
            return root.as_uri()
        return root

    @property
    def redis_connection_string(self) -> str:
        """Feast's `host:port,db=N[,password=...]` form; contains the secret, never log it."""
        # Feast hands these to redis.Redis(): without them a hung server blocks forever.
        timeout = f"{self.redis_timeout_seconds:g}"
        parts = [
            f"{self.redis_host}:{self.redis_port}",
            f"db={self.redis_db}",
            f"socket_timeout={timeout}",
            f"socket_connect_timeout={timeout}",
        ]
        if self.redis_password is not None:
            parts.append(f"password={self.redis_password.get_secret_value()}")
        return ",".join(parts)

    def describe(self) -> dict[str, str]:
        """Settings for display: secrets and passwords inside URIs masked, paths as strings."""
        shown: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if isinstance(getattr(self, name), SecretStr):
                shown[name] = MASK
            elif value is not None and value != {}:
                shown[name] = mask_credentials(str(value))
        return shown

    def redact(self, text: str) -> str:
        """The text with every secret of these settings masked (for error messages)."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                text = text.replace(value.get_secret_value(), MASK)
        password = urlsplit(self.mlflow_tracking_uri or "").password
        if password:
            text = text.replace(password, MASK)
        return mask_credentials(text)

    def __repr_args__(self):
        # repr()/str(): passwords inside URIs masked (SecretStr fields mask themselves).
        for name, value in super().__repr_args__():
            yield name, mask_credentials(value) if isinstance(value, str) else value


def _resolve(path: Path | None, default: Path) -> Path:
    return (path or default).expanduser().resolve()


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment; keyword overrides win (tests, CLI flags)."""
    return Settings(**overrides)
