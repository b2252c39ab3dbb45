"""Training end to end: prepare -> fit -> log -> gate -> register, each step a function.

`train_and_register` runs the steps in order; `needs_training` says when a run can be skipped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from app.config import Settings
from app.data.snapshot import current_snapshot, read_manifest
from app.domain import CHAMPION
from app.training import model_card, registry
from app.training.crossval import CV_TABLE, CrossValidation, cross_validation
from app.training.dataset import Splits, check_features, configured_split, load_training_frame
from app.training.fair_lending import Finding
from app.training.fit import BASELINE_C, FitResult, encoded_dataset, fit_xgboost, xgb_params
from app.training.gates import GateConfig, gate, gate_config, gates
from app.training.model import CreditModel, used_columns_of
from app.training.preprocess import FeatureEncoder
from app.training.reference import log_reference
from app.training.run_log import GATES_FILE, log_evaluation, log_grades, log_model, log_setup


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
    card: str = ""  # where the version's model card is in MLflow, or why it is not
    # The card as logged (None if it could not be built): the main job writes it out as is.
    card_content: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Prepared:
    """What every later step works from: MLflow (checked to answer), the snapshot trained on,
    the encoder and the split training set."""

    mlflow_client: Any
    experiment: str
    snapshot_id: str
    encoder: FeatureEncoder
    splits: Splits


@dataclass(frozen=True)
class Fitted:
    """The fitted models and how they were fitted (what the run logs)."""

    model: CreditModel
    baseline: CreditModel | None
    metrics: dict[str, Any]  # the boosting's own, at its best round
    params: dict[str, Any]
    workers: int
    trials: int
    cv: CrossValidation | None = None  # k-fold AUC of both models on the development rows


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    model_uri: str
    metrics: dict[str, float]  # test_* metrics of the model
    baseline_metrics: dict[str, float]
    found: list[Finding]  # the fair-lending screen's, on the test split


def needs_training(settings: Settings) -> str | None:
    """Why training can be skipped (the champion was trained on the current snapshot), or None
    when a model should be trained."""
    snapshot_id = read_manifest(settings.offline_dir)["snapshot_id"]
    client = registry.client(settings)
    champion = registry.alias_version(client, settings.model_name, CHAMPION)
    if champion is None:
        return None
    with registry.failures_named(settings.mlflow_tracking_uri, f"reading v{champion}"):
        run_id = client.get_model_version(settings.model_name, champion).run_id
        trained_on = client.get_run(run_id).data.tags.get("snapshot_id")
    if trained_on == snapshot_id:
        return f"champion v{champion} was trained on snapshot {snapshot_id}: kept"
    return None


def prepare(settings: Settings) -> Prepared:
    mlflow_client = registry.client(settings)  # fail before any work if MLflow is down
    experiment = registry.experiment_id(settings, mlflow_client)
    manifest = read_manifest(settings.offline_dir)
    encoder = FeatureEncoder.for_dataset(settings.load_dataset())
    frame = load_training_frame(settings)
    check_features(frame, encoder)
    splits = configured_split(frame, settings)
    return Prepared(mlflow_client, experiment, manifest["snapshot_id"], encoder, splits)


def base_params(settings: Settings, encoder: FeatureEncoder) -> dict[str, Any]:
    nthread = max(1, int(settings.train_cpus_per_worker))
    return xgb_params(settings.xgb_params, settings.monotone(), encoder, nthread, settings.seed)


def tuned_params(
    settings: Settings, prepared: Prepared, params: dict[str, Any], trials: int
) -> dict[str, Any]:
    # Imported here: Ray Tune (~30 ms to import on top of Ray Train) loads only when a search
    # is asked for, so a plain fit never brings Tune into the driver.
    from app.training.tune import tune_xgboost

    return tune_xgboost(prepared.splits, prepared.encoder, params, settings, trials)


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
    xgb_fit = fit_xgboost(
        train_ds,
        valid_ds,
        encoder,
        params,
        settings.num_boost_round,
        settings.early_stopping_rounds,
        workers,
        settings.train_cpus_per_worker,
        settings.train_storage,
        max_failures=settings.train_max_failures,
        baseline_C=BASELINE_C if with_baseline else None,
        worker_resources=settings.train_worker_resources,
    )
    baseline = xgb_fit.baseline
    return xgb_fit, baseline


def fit(
    settings: Settings,
    prepared: Prepared,
    params: dict[str, Any],
    workers: int,
    trials: int,
    with_baseline: bool,
) -> Fitted:
    """The XGBoost model (and the logistic baseline) fitted through Ray Train."""
    encoder = prepared.encoder
    xgb_fit, baseline_fit = fit_models(
        settings, prepared.splits, encoder, workers, params, with_baseline
    )
    model = CreditModel("xgboost", encoder, xgb_fit.estimator, settings.threshold())
    model.used_columns = used_columns_of(model)
    baseline = None
    if baseline_fit is not None:
        baseline = CreditModel("logistic", encoder, baseline_fit.estimator, model.threshold)
    return Fitted(model, baseline, dict(xgb_fit.metrics), params, workers, trials)


def log_run(
    settings: Settings, prepared: Prepared, fitted: Fitted, config: GateConfig
) -> LoggedRun:
    """One MLflow run: setup, evaluations, drift reference, the pyfunc model, the gates' tag."""
    import mlflow  # ~11 s to import: only when a run is logged

    splits, model = prepared.splits, fitted.model
    with mlflow.start_run(experiment_id=prepared.experiment) as run:
        log_setup(
            settings, prepared.snapshot_id, splits, fitted.params, fitted.workers, fitted.trials
        )
        mlflow.log_metrics({k: float(v) for k, v in fitted.metrics.items()})
        metrics, found = log_evaluation(
            "test", model, splits.test, model.threshold, True, config.screen
        )
        log_evaluation("validation", model, splits.validation, model.threshold, False)
        # What drift monitoring compares live traffic with, found later through this run.
        source = current_snapshot(settings.offline_dir).resolve()
        log_reference(mlflow, model, splits.train, prepared.snapshot_id, source)
        baseline_metrics: dict[str, float] = {}
        if fitted.baseline is not None:
            baseline_metrics, _ = log_evaluation(
                "baseline_test", fitted.baseline, splits.test, model.threshold, False
            )
        if fitted.cv is not None:
            metrics |= fitted.cv.metrics()  # reported beside the test AUC
            mlflow.log_metrics(fitted.cv.metrics())
            mlflow.log_text(fitted.cv.table().to_csv(index=False), CV_TABLE)
        log_grades(model, splits.test, settings.calibration_grades, settings.calibration_confidence)
        model_uri = log_model(model, splits.test)
        checks = gates(config, metrics, found)
        mlflow.log_dict(checks, GATES_FILE)  # each gate with its bound, for the model card
        mlflow.set_tag("gates", "passed" if all(checks.values()) else "failed")
    return LoggedRun(run.info.run_id, model_uri, metrics, baseline_metrics, found)


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[step] = time.perf_counter() - started


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
    timings: dict[str, float] = {}
    with _timed(timings, "training set"):
        prepared = prepare(settings)
    params = base_params(settings, prepared.encoder)
    if trials > 0:
        with _timed(timings, "tune"):
            params = tuned_params(settings, prepared, params, trials)
    workers = workers or settings.train_workers
    with _timed(timings, "fit"):
        fitted = fit(settings, prepared, params, workers, trials, with_baseline)
    if settings.cv_folds:
        with _timed(timings, "cross-validation"):
            rounds = int(fitted.metrics["best_iteration"]) + 1
            baseline = fitted.baseline is not None
            splits, encoder = prepared.splits, prepared.encoder
            cv = cross_validation(settings, splits, encoder, fitted.params, rounds, baseline)
            fitted = replace(fitted, cv=cv)
    config = gate_config(settings)
    with _timed(timings, "log"):
        logged = log_run(settings, prepared, fitted, config)
    checks = gate(config, logged.metrics, logged.run_id, logged.found)
    version, alias = registry.register(
        settings,
        prepared.mlflow_client,
        logged.model_uri,
        logged.run_id,
        logged.metrics,
        checks,
        version_tags,
    )
    card, card_content = model_card.publish_or_say(settings, version)
    return TrainReport(
        run_id=logged.run_id,
        model_name=settings.model_name,
        version=version,
        aliases=[alias],
        metrics=logged.metrics,
        baseline_metrics=logged.baseline_metrics,
        gates=checks,
        sizes=prepared.splits.sizes(),
        seconds=timings,
        card=card,
        card_content=card_content,
    )
