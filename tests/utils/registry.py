"""Registry helpers for tests: a real `mlflow server` on SQLite, and a fitted model logged and
registered the way training does (pyfunc, artifact digest, alias with an audit event)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from app.localservices import ManagedProcess, start_mlflow_server

# The registered model of the registry unit tests (the settings' default model_name).
NAME = "credit_risk"


def start_sqlite_mlflow_server(root: Path) -> ManagedProcess:
    """`mlflow server` on SQLite files (tracking in mlflow.db, the registry apart in
    registry.db, so a test can break one), artifacts under `root`; returns once /health answers."""
    root.mkdir(parents=True, exist_ok=True)
    return start_mlflow_server(
        root, f"sqlite:///{root / 'mlflow.db'}", registry_uri=f"sqlite:///{root / 'registry.db'}"
    )


def register_fitted(settings, model, alias: str | None, tags: dict | None = None) -> str:
    """Log `model` (a CreditModel) as training does and register it through the registry
    module (so it carries the artifact digest); point `alias` at it. -> the version."""
    import mlflow

    from app.config import PROJECT_ROOT
    from app.training import registry
    from app.training.pyfunc import ARTIFACT_KEY, CreditRiskPyfunc, pip_requirements

    client = registry.client(settings)
    experiment = registry.experiment_id(settings, client)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=CreditRiskPyfunc(),
            artifacts={ARTIFACT_KEY: str(model.save(Path(tmp) / "credit_model"))},
            pip_requirements=pip_requirements(),
            code_paths=[str(PROJECT_ROOT / "app")],
        )
    version = registry.register_version(settings, client, info.model_uri, tags or {}, "test")
    if alias:
        registry.move_alias(client, settings.model_name, alias, version, alias, "test")
    return version


def audit_tags(uri: str) -> dict[str, str]:
    """The audit.* tags of NAME in the registry at `uri`."""
    from mlflow import MlflowClient

    from app.training.audit import AUDIT_PREFIX

    tags = MlflowClient(uri, uri).get_registered_model(NAME).tags
    return {k: v for k, v in tags.items() if k.startswith(AUDIT_PREFIX)}
