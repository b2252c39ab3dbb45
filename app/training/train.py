"""Training end to end: training set -> Ray Train fits -> evaluation -> MLflow run -> registry."""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from app.config import PROJECT_ROOT, Settings
from app.data.schema import LABEL
from app.data.snapshot import current_snapshot, read_manifest
from app.domain import CHALLENGER, CHAMPION
from app.training import registry
from app.training.dataset import Splits, TrainingDataError, load_training_frame, split_frame
from app.training.evaluate import evaluation_bundle
from app.training.fit import FitResult, encoded_dataset, fit_baseline, fit_xgboost, xgb_params
from app.training.model import CreditModel, used_columns_of
from app.training.preprocess import FeatureEncoder
from app.training.reference import log_reference

log = logging.getLogger(__name__)


class GateFailed(registry.RegistryError):
    """The model missed an absolute quality gate: it was not registered."""


@dataclass
class TrainReport:
    run_id: str
    model_name: str
    version: str | None
    aliases: list[str]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    gates: dict[str, bool]
    sizes: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)


def check_features(frame: pd.DataFrame, encoder: FeatureEncoder) -> None:
    missing = [c for c in encoder.raw_columns if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"training set lacks features: {', '.join(missing)}")
    empty = [c for c in encoder.raw_columns if frame[c].isna().all()]
    if empty:
        raise TrainingDataError(f"training set has no values for features: {', '.join(empty)}")
    if frame[LABEL].nunique() < 2:
        raise TrainingDataError(
            f"training labels have a single class ({LABEL}={frame[LABEL].iloc[0]})"
        )


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def gates(settings: Settings, metrics: dict[str, float]) -> dict[str, bool]:
    checks = {
        f"test_auc >= {settings.gate_min_auc}": metrics.get("test_auc", 0.0)
        >= settings.gate_min_auc,
        f"test_brier <= {settings.gate_max_brier}": metrics.get("test_brier", 1.0)
        <= settings.gate_max_brier,
    }
    if settings.gate_min_approval_ratio > 0:
        ratio = metrics.get("test_fairness_age_band_min_approval_ratio", 0.0)
        checks[f"age-band approval ratio >= {settings.gate_min_approval_ratio}"] = (
            ratio >= settings.gate_min_approval_ratio
        )
    return checks


def fit_models(
    settings: Settings,
    splits: Splits,
    encoder: FeatureEncoder,
    workers: int,
    params: dict[str, Any],
    with_baseline: bool,
) -> tuple[FitResult, FitResult | None]:
    train_ds = encoded_dataset(splits.train, encoder)
    valid_ds = encoded_dataset(splits.validation, encoder)
    storage = settings.data_dir / "ray_results"
    xgb_fit = fit_xgboost(
        train_ds,
        valid_ds,
        encoder,
        params,
        settings.num_boost_round,
        settings.early_stopping_rounds,
        workers,
        settings.train_cpus_per_worker,
        storage,
        max_failures=settings.train_max_failures,
    )
    baseline = (
        fit_baseline(train_ds, valid_ds, encoder, storage, settings.train_cpus_per_worker)
        if with_baseline
        else None
    )
    return xgb_fit, baseline


def _log_evaluation(
    mlflow, prefix: str, model: CreditModel, frame: pd.DataFrame, threshold: float, artifacts: bool
) -> dict[str, float]:
    scores = model.predict_pd(frame)
    result = evaluation_bundle(frame[LABEL].to_numpy(), scores, frame, threshold)
    try:
        metrics = {f"{prefix}_{k}": float(v) for k, v in result.metrics.items() if v == v}
        mlflow.log_metrics(metrics)
        if artifacts:
            for file_name, figure in result.figures.items():
                mlflow.log_figure(figure, f"evaluation/{prefix}/{file_name}")
            for table_name, table in result.tables.items():
                mlflow.log_text(table.to_csv(index=False), f"evaluation/{prefix}/{table_name}.csv")
    finally:
        result.close()
    return metrics


def train_and_register(
    settings: Settings,
    workers: int | None = None,
    trials: int = 0,
    with_baseline: bool = True,
    version_tags: dict[str, str] | None = None,
) -> TrainReport:
    """Fit, evaluate and log a model; register it and move aliases only if it earned it.

    MLflow failing part-way (logging, registering) is one RegistryError line, never a
    traceback; the champion is only ever moved after the registry answered that it has none.
    """
    with registry.failures_named(settings.mlflow_tracking_uri, "training", quick=False):
        return _train_and_register(settings, workers, trials, with_baseline, version_tags)


def _train_and_register(
    settings: Settings,
    workers: int | None,
    trials: int,
    with_baseline: bool,
    version_tags: dict[str, str] | None,
) -> TrainReport:
    import mlflow

    from app.training.pyfunc import ARTIFACT_KEY, CreditRiskPyfunc, model_input, pip_requirements

    timings: dict[str, float] = {}
    started = time.perf_counter()
    mlflow_client = registry.client(settings)  # fail before any work if MLflow is down
    experiment = registry.experiment_id(settings, mlflow_client)
    manifest = read_manifest(settings.offline_dir)
    encoder = FeatureEncoder.default()
    frame = load_training_frame(settings)
    check_features(frame, encoder)
    splits = split_frame(
        frame,
        settings.split_method,
        settings.seed,
        settings.validation_fraction,
        settings.test_fraction,
    )
    timings["training set"] = time.perf_counter() - started

    workers = workers or settings.train_workers
    nthread = max(1, int(settings.train_cpus_per_worker))
    params = xgb_params(
        settings.xgb_params, settings.monotone_constraints, encoder, nthread, settings.seed
    )
    if trials > 0:
        from app.training.tune import tune_xgboost

        step = time.perf_counter()
        params = tune_xgboost(splits, encoder, params, settings, trials)
        timings["tune"] = time.perf_counter() - step
    step = time.perf_counter()
    xgb_fit, baseline_fit = fit_models(settings, splits, encoder, workers, params, with_baseline)
    timings["fit"] = time.perf_counter() - step

    model = CreditModel("xgboost", encoder, xgb_fit.estimator, settings.decision_threshold)
    model.used_columns = used_columns_of(model)
    step = time.perf_counter()
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.set_tags(
            {
                "snapshot_id": manifest["snapshot_id"],
                "feature_service": settings.feature_service_name,
                "git_commit": git_commit(),
                "model_kind": "xgboost",
            }
        )
        mlflow.log_params(
            {
                **{f"xgb_{k}": v for k, v in params.items() if k not in ("nthread",)},
                "num_boost_round": settings.num_boost_round,
                "early_stopping_rounds": settings.early_stopping_rounds,
                "train_workers": workers,
                "split_method": splits.method,
                "seed": settings.seed,
                "decision_threshold": settings.decision_threshold,
                "snapshot_id": manifest["snapshot_id"],
                "feature_service": settings.feature_service_name,
                "tune_trials": trials,
                **{f"rows_{k}": v for k, v in splits.sizes().items()},
            }
        )
        mlflow.log_metrics({k: float(v) for k, v in xgb_fit.metrics.items()})
        metrics = _log_evaluation(mlflow, "test", model, splits.test, model.threshold, True)
        _log_evaluation(mlflow, "validation", model, splits.validation, model.threshold, False)
        # What drift monitoring compares live traffic with, found later through this run.
        log_reference(
            mlflow,
            model,
            splits.train,
            manifest["snapshot_id"],
            current_snapshot(settings.offline_dir).resolve(),
        )
        baseline_metrics: dict[str, float] = {}
        if baseline_fit is not None:
            baseline = CreditModel("logistic", encoder, baseline_fit.estimator, model.threshold)
            baseline_metrics = _log_evaluation(
                mlflow, "baseline_test", baseline, splits.test, model.threshold, False
            )
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = model.save(Path(tmp) / "credit_model")
            # The signature keeps the warehouse types (integers stay `long`), so callers pass
            # values as they come from the feature store; serving and batch scoring call the
            # unwrapped model, which also takes missing values.
            complete = splits.test.dropna(subset=encoder.raw_columns).head(5)
            example = model_input(complete, encoder).reset_index(drop=True)
            output = CreditRiskPyfunc()
            output.model = model
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
                signature = mlflow.models.infer_signature(
                    example, output.predict(None, example), params={"explain": False}
                )
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=CreditRiskPyfunc(),
                artifacts={ARTIFACT_KEY: str(model_dir)},
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
                code_paths=[str(PROJECT_ROOT / "app")],
            )
        checks = gates(settings, metrics)
        mlflow.set_tag("gates", "passed" if all(checks.values()) else "failed")
    timings["log"] = time.perf_counter() - step

    report = TrainReport(
        run.info.run_id,
        settings.model_name,
        None,
        [],
        metrics,
        baseline_metrics,
        checks,
        splits.sizes(),
        timings,
    )
    if not all(checks.values()):
        failed = ", ".join(k for k, ok in checks.items() if not ok)
        raise GateFailed(
            f"model not registered: gate failed ({failed}); metrics are in MLflow run "
            f"{run.info.run_id}"
        )
    report.version, alias = register_version(
        settings, mlflow_client, info.model_uri, run.info.run_id, metrics, checks, version_tags
    )
    report.aliases.append(alias)
    return report


def register_version(
    settings: Settings,
    mlflow_client,
    model_uri: str,
    run_id: str,
    metrics: dict[str, float],
    checks: dict[str, bool],
    version_tags: dict[str, str] | None,
) -> tuple[str, str]:
    """Register a model that passed the gates; champion only if the registry says there is
    none, else challenger. -> (version, alias).

    The champion is looked up before anything is written: a registry that cannot answer
    (down, 5xx) raises RegistryError, so neither a new version nor an alias appears and the
    champion stays what it was.
    """
    name = settings.model_name
    champion = registry.alias_version(mlflow_client, name, CHAMPION)
    # Tags go on at registration, before any alias names the version, so a replica that
    # loads it sees them (serving reads `traffic` once per loaded version).
    version = registry.register_version(
        settings, mlflow_client, model_uri, version_tags or {}, f"run {run_id}"
    )
    registry.record(
        mlflow_client,
        name,
        "register",
        None,
        version,
        None,
        f"run {run_id}, test AUC {metrics['test_auc']:.4f}",
    )
    if champion is None:
        alias, action, reason = CHAMPION, "champion", "first model to pass the gates"
    else:
        reason = f"passed gates: {', '.join(checks)}"
        alias, action = CHALLENGER, "challenger"
    registry.move_alias(mlflow_client, name, alias, version, action, reason)
    return version, alias
