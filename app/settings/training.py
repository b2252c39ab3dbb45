"""Settings of training and the registry: MLflow, Ray Train, the XGBoost model, the gates.
Fields only; app.config.Settings combines the groups."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

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


class TrainingSettings(BaseModel):
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
    train_worker_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each training worker needs besides its CPUs (JSON); "
        "a resource of 1 on each of N nodes spreads N workers one per node.",
    )
    train_storage: str | None = Field(
        None,
        description="Ray Train's storage (checkpoints): a path every node mounts or a URI "
        "such as `s3://bucket/ray_results` (default: `<data_dir>/ray_results`, one machine).",
    )
    training_join: Literal["duckdb", "feast"] = Field(
        "duckdb",
        description="How the training set's point-in-time join runs: `duckdb` (an ASOF join over "
        "the snapshot's Parquet files, the views as the spec defines them for Feast; streams, "
        "linear in rows) or `feast` (Feast's `get_historical_features` on its file offline "
        "store; pandas in the driver, about 2.3 GB at a million applications).",
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
    monotone_constraints: dict[str, int] | None = Field(
        None,
        description="Raw numeric feature -> +1 (PD rises with it) or -1 (JSON); default: the "
        "dataset spec's `model.monotone`.",
    )
    decision_threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Decline when PD >= this; default: the dataset spec's `model.threshold`, or "
        "the cost-optimal cut of its costs (German credit: 1/6, from the data's 5:1 cost of "
        "approving a bad vs declining a good applicant).",
    )
    gate_min_auc: float | None = Field(
        None, description="Gate: minimum test AUC for a challenger (default: the spec's)."
    )
    gate_max_brier: float | None = Field(
        None, description="Gate: maximum test Brier score (default: the spec's)."
    )
    fair_lending_screen: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Fair-lending screen: a model is not registered or promoted, and a live "
        "window raises `CreditFairLendingScreen`, when a group of a screened fairness grouping "
        "is approved at less than this share of the most favoured group's rate (the adverse "
        "impact ratio), significantly (`CREDIT_FAIR_LENDING_ALPHA`). 0.8 is the practitioners' "
        "four-fifths convention, not a legal threshold; 0 turns the screen off.",
    )
    fair_lending_alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Fisher's exact test of a group's approvals against the most favoured "
        "group's must reach this p-value for a ratio below the screen to count: a small group "
        "is reported, not over-read.",
    )
    cv_folds: int = Field(
        5,
        ge=0,
        description="Folds of the cross-validated AUC reported beside the test AUC (model and "
        "baseline refitted per fold on the train and validation rows; above 20,000 rows as "
        "one Ray task); 0 "
        "skips it.",
    )
    cv_max_rows: int = Field(
        200_000,
        ge=100,
        description="Cross-validate on a stratified sample of at most this many development "
        "rows: the folds' cost stays bounded at millions of applications.",
    )
    promote_min_auc_gain: float = Field(
        0.005, description="Challenger must beat the champion's test AUC by this to promote."
    )

    seed: int = Field(42, description="Seed for ids, timestamps, splits and synthetic data.")
    model_load_timeout_seconds: float = Field(
        60,
        gt=0,
        description="A serving replica gives up a model load (alias check, version download, "
        "digest check) not finished in this long: every MLflow request it makes is cut to "
        "what is left, the loaded models keep serving and `GET /v1/status` says why "
        "(`model_error`). A starting replica waits this long at most for its first load, "
        "then answers 503 until a champion loads in the background.",
    )
    serve_max_tag_traffic: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Largest A/B weight a version's registry `traffic` tag may give a "
        "challenger without a redeploy; a larger one is ignored (and shown on /v1/status). "
        "`shadow` is always honoured.",
    )

    @field_validator("cv_folds")
    @classmethod
    def _check_cv_folds(cls, value: int) -> int:
        if value == 1:
            raise ValueError("cross-validation needs at least 2 folds (0 skips it)")
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
