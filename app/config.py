"""One typed settings object: every path, URI, credential, port and worker count lives here.

The fields are grouped by area in app/settings/; Settings combines them with the environment
(`CREDIT_*`), the derived paths and the secret-safe display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.dataset import Dataset, load_dataset
from app.errors import ConfigError
from app.secrets import MASK, mask_credentials
from app.settings.data import PROJECT_ROOT, SHIPPED_DATA_PATH, SHIPPED_DATASET, DataSettings
from app.settings.monitoring import MonitoringSettings
from app.settings.serving import ServingSettings
from app.settings.training import TrainingSettings

ENV_PREFIX = "CREDIT_"

__all__ = [
    "ENV_PREFIX",
    "PROJECT_ROOT",
    "SHIPPED_DATASET",
    "SHIPPED_DATA_PATH",
    "Settings",
    "load_settings",
]


class Settings(MonitoringSettings, ServingSettings, TrainingSettings, DataSettings, BaseSettings):
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

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        self.local_source_dir = _resolve(self.local_source_dir, self.data_dir / "source")
        self.offline_dir = _resolve(self.offline_dir, self.data_dir / "offline")
        self.feast_dir = _resolve(self.feast_dir, self.data_dir / "feast")
        if self.raw_data_path is not None:
            self.raw_data_path = self.raw_data_path.expanduser().resolve()
        self.dataset = self.dataset.expanduser().resolve()
        self.prediction_log_dir = _resolve(self.prediction_log_dir, self.data_dir / "predictions")
        self.api_keys_file = _resolve(self.api_keys_file, self.data_dir / "api_keys.json")
        if self.api_jwt_issuer and self.api_jwt_key_file is None:
            raise ValueError("api_jwt_issuer needs api_jwt_key_file (the issuer's public key)")
        self.monitor_dir = _resolve(self.monitor_dir, self.data_dir / "monitoring")
        self.monitor_workspace_dir = _resolve(
            self.monitor_workspace_dir, self.monitor_dir / "workspace"
        )
        if self.train_storage is None:
            self.train_storage = str(self.data_dir / "ray_results")
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

    @model_validator(mode="after")
    def _retention_floor(self) -> Settings:
        if self.prediction_log_retention_days < self.prediction_log_retention_min_days:
            raise ValueError(
                f"prediction_log_retention_days ({self.prediction_log_retention_days}) is below "
                f"prediction_log_retention_min_days ({self.prediction_log_retention_min_days}), "
                "the shortest retention allowed: raise CREDIT_PREDICTION_LOG_RETENTION_DAYS or "
                "lower CREDIT_PREDICTION_LOG_RETENTION_MIN_DAYS"
            )
        return self

    def load_dataset(self) -> Dataset:
        """The dataset spec these settings select (parsed once per file version)."""
        return load_dataset(self.dataset)

    def threshold(self) -> float:
        """The decision cut: CREDIT_DECISION_THRESHOLD, else the dataset spec's."""
        if self.decision_threshold is not None:
            return self.decision_threshold
        return self.load_dataset().spec.model.decision_threshold

    def monotone(self) -> dict[str, int]:
        """Monotone constraints: CREDIT_MONOTONE_CONSTRAINTS, else the dataset spec's."""
        if self.monotone_constraints is not None:
            return dict(self.monotone_constraints)
        return dict(self.load_dataset().spec.model.monotone)

    def raw_data_file(self) -> Path:
        """The dataset's flat file: CREDIT_RAW_DATA_PATH, else the one its spec names."""
        if self.raw_data_path is not None:
            return self.raw_data_path
        dataset = self.load_dataset()
        flat = dataset.spec.sources.flat_file
        if flat is None:
            raise ConfigError(
                f"{dataset.directory}: the dataset spec has no `sources.flat_file`; set "
                f"{ENV_PREFIX}RAW_DATA_PATH or read the tables from the source"
            )
        return (dataset.directory / flat.path).resolve()

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
        for uri in (self.mlflow_tracking_uri, self.feast_registry):
            password = urlsplit(uri or "").password
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
