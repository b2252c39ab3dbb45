"""Settings of the drift monitor and drift-triggered retraining. Fields only;
app.config.Settings combines the groups."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, field_validator


class MonitoringSettings(BaseModel):
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
    monitor_workspace_dir: Path | None = Field(
        None,
        description="Evidently workspace each drift check is added to as a run, for "
        "`evidently ui --workspace <dir>`; the newest monitor_keep_reports runs keep their "
        "plots, older ones their figures (default: `<monitor_dir>/workspace`).",
    )
    calibration_grades: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.02, 0.05, 0.10, 0.20, 0.30, 0.50],
        min_length=1,
        max_length=30,
        description="Calibration backtesting's master scale: increasing PD cut points, grade i "
        "holding PDs up to the i-th (JSON).",
    )
    calibration_confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1,
        description="Confidence of the Jeffreys interval a grade's observed default rate gets; "
        "a grade whose mean predicted PD falls outside it is flagged.",
    )
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

    @field_validator("calibration_grades")
    @classmethod
    def _increasing(cls, cuts: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(cuts)):
            raise ValueError(f"PD grade cut points must increase: {cuts}")
        return cuts
