"""What a training run logs to MLflow: its tags and parameters, evaluations, the pyfunc model.

mlflow (~11 s to import) and the pyfunc wrapper, which imports it, are imported inside the
functions, so importing training (jobs.train --help, unit tests) does not pay for them.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from app.config import PROJECT_ROOT, Settings
from app.training import fair_lending
from app.training.dataset import Splits
from app.training.evaluate import evaluation_bundle
from app.training.fair_lending import Finding, Screen
from app.training.model import CreditModel


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


def log_setup(
    settings: Settings,
    snapshot_id: str,
    splits: Splits,
    params: dict[str, Any],
    workers: int,
    trials: int,
) -> None:
    """Inside an active run: what the model was trained on and with (tags and parameters)."""
    import mlflow

    mlflow.set_tags(
        {
            "snapshot_id": snapshot_id,
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
            "decision_threshold": settings.threshold(),
            "snapshot_id": snapshot_id,
            "feature_service": settings.feature_service_name,
            "tune_trials": trials,
            **{f"rows_{k}": v for k, v in splits.sizes().items()},
        }
    )


def log_evaluation(
    prefix: str,
    model: CreditModel,
    frame: pd.DataFrame,
    threshold: float,
    artifacts: bool,
    screen: Screen | None = None,
) -> tuple[dict[str, float], list[Finding]]:
    """Inside an active run: the model's metrics on `frame` as `<prefix>_<metric>` (undefined
    ones left out), and with `artifacts` its figures and tables. With a `screen`, the
    fair-lending screen of its fairness tables too: `fair_lending/<prefix>.json` and the
    `<prefix>_fair_lending_breaches` count. -> (the metrics logged, the screen's findings)."""
    import mlflow

    scores = model.predict_pd(frame)
    dataset = model.dataset
    result = evaluation_bundle(
        frame[dataset.label].to_numpy(), scores, frame, threshold, dataset.spec.fairness.groupings
    )
    try:
        metrics = {f"{prefix}_{k}": float(v) for k, v in result.metrics.items() if v == v}
        found: list[Finding] = []
        if screen is not None:  # kept even when nothing is screened: the tables are reported
            summary = {n: result.tables[f"fairness_{n}"] for n in dataset.spec.fairness.groupings}
            found = fair_lending.findings(summary, screen)
            metrics[f"{prefix}_fair_lending_breaches"] = float(len(fair_lending.breaches(found)))
            record = fair_lending.record(screen, summary, found)
            mlflow.log_dict(record, f"{fair_lending.ARTIFACT_DIR}/{prefix}.json")
        mlflow.log_metrics(metrics)
        if artifacts:
            for file_name, figure in result.figures.items():
                mlflow.log_figure(figure, f"evaluation/{prefix}/{file_name}")
            for table_name, table in result.tables.items():
                mlflow.log_text(table.to_csv(index=False), f"evaluation/{prefix}/{table_name}.csv")
    finally:
        result.close()
    return metrics, found


def log_model(model: CreditModel, test: pd.DataFrame) -> str:
    """Inside an active run: the model as an MLflow pyfunc with its signature. -> its URI."""
    import mlflow

    from app.training.pyfunc import (
        ARTIFACT_KEY,
        input_example,
        model_signature,
        pip_requirements,
        warehouse_types,
    )

    encoder = model.encoder
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = model.save(Path(tmp) / "credit_model")
        info = mlflow.pyfunc.log_model(
            name="model",
            # Models from code: MLflow stores and runs this file rather than a pickle.
            python_model=str(Path(__file__).with_name("pyfunc_code.py")),
            artifacts={ARTIFACT_KEY: str(model_dir)},
            signature=model_signature(encoder),
            input_example=input_example(test, encoder),
            pip_requirements=pip_requirements(),
            code_paths=[str(PROJECT_ROOT / "app")],
            # The signature's `double` stands for the warehouse's `long` too; the source
            # types stay readable in the MLmodel file.
            metadata={"warehouse_types": warehouse_types(encoder)},
        )
    return info.model_uri


GRADES_TABLE = "evaluation/test/calibration_by_grade.csv"
GATES_FILE = "gates.json"


def log_grades(model: CreditModel, test: pd.DataFrame, cuts: list[float], confidence: float):
    """Inside an active run: the test split's calibration by PD grade on the master scale
    (the same table `jobs.monitor performance` makes from live outcomes)."""
    import mlflow

    from app.domain import PREDICTION
    from app.training.calibration import calibration_by_grade, scale_of

    joined = pd.DataFrame(
        {
            "variant": "test",
            PREDICTION: model.predict_pd(test),
            "defaulted": test[model.dataset.label].to_numpy("float64"),
        }
    )
    table = calibration_by_grade(joined, scale_of(cuts), confidence)
    mlflow.log_text(table.to_csv(index=False), GRADES_TABLE)
