"""Registry helpers for tests: a real `mlflow server` on SQLite, and a fitted model logged and
registered the way training does (pyfunc, artifact digest, alias with an audit event)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from app.localservices import free_port

MLFLOW_CLI = Path(sys.executable).with_name("mlflow")


@dataclass
class MlflowServer:
    """An `mlflow server` process we started (its own process group, stopped by its id)."""

    url: str
    root: Path
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log_tail(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")[-2000:]


def start_mlflow_server(root: Path, timeout: float = 180) -> MlflowServer:
    """`mlflow server` on SQLite files (tracking in mlflow.db, the registry apart in
    registry.db, so a test can break one), artifacts proxied to a directory under `root`;
    returns once /health answers (polled with a deadline)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")},
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    with open(root / "server.log", "wb") as out:
        process = subprocess.Popen(
            [
                str(MLFLOW_CLI),
                "server",
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--registry-store-uri",
                f"sqlite:///{root / 'registry.db'}",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
            start_new_session=True,
        )
    server = MlflowServer(f"http://127.0.0.1:{port}", root, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited:\n{server.log_tail()}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{server.url}/health", timeout=3) as response,
        ):
            if response.status == 200:
                return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"mlflow server not healthy in {timeout} s:\n{server.log_tail()}")


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
