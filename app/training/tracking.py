"""The MLflow server as training and the registry reach it: the client, the experiment, and
every failure named in one line (never a traceback, never read as "absent")."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from app.config import Settings
from app.errors import CreditRiskError

NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


class RegistryError(CreditRiskError):
    """MLflow is unreachable, or the registry is not in the state an operation needs."""


def _mask_urls(text: str) -> str:
    """Credentials in any URI (scheme://user:password@host) shown as ***."""
    return re.sub(r"://[^/@\s]+@", "://***@", text)


def _describe(settings: Settings) -> str:
    # A database URI can carry a password: show the scheme and host part only.
    return f"MLflow at {_mask_urls(settings.mlflow_tracking_uri or '')}"


@contextmanager
def quick_failures() -> Iterator[None]:
    """Fail fast on an unreachable server instead of MLflow's minutes of retries."""
    saved = {
        k: os.environ.get(k)
        for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    }
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "10"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def client(settings: Settings):
    """An MlflowClient for tracking and registry, after checking MLflow answers."""
    # Imported here: mlflow costs ~11 s to import, which callers that never reach MLflow skip.
    import mlflow
    from mlflow import MlflowClient

    if settings.mlflow_tracking_uri.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    mlflow_client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    with quick_failures():
        try:
            mlflow_client.search_experiments(max_results=1)
        except Exception as exc:
            raise RegistryError(
                f"{_describe(settings)} is unreachable: {type(exc).__name__}: "
                f"{settings.redact(str(exc).splitlines()[0])[:300]}"
            ) from None
    return mlflow_client


def experiment_id(settings: Settings, mlflow_client) -> str:
    """The experiment, created with an absolute artifact location on first use."""
    found = mlflow_client.get_experiment_by_name(settings.mlflow_experiment)
    if found is not None:
        return found.experiment_id
    return mlflow_client.create_experiment(
        settings.mlflow_experiment, artifact_location=settings.mlflow_artifact_location
    )


def unavailable(uri: str, exc: BaseException, doing: str) -> RegistryError:
    """The one-line error for a registry call that failed for any reason but "not found"."""
    text = str(exc).strip()
    detail = _mask_urls(text.splitlines()[0] if text else "")[:300]
    return RegistryError(
        f"MLflow at {_mask_urls(uri)} is unreachable or erroring while {doing}: "
        f"{type(exc).__name__}: {detail}"
    )


@contextmanager
def failures_named(uri: str, doing: str, quick: bool = True) -> Iterator[None]:
    """MLflow failures inside as one RegistryError line (not a traceback, not "absent").
    `quick`: no retries and a short timeout (not for large artifact uploads)."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        with quick_failures() if quick else nullcontext():
            yield
    except (MlflowException, requests.RequestException) as exc:
        raise unavailable(uri, exc, doing) from None


def tracking_uri(mlflow_client) -> str:
    return str(getattr(mlflow_client, "_registry_uri", "") or "")


def registered_model(mlflow_client, name: str, doing: str):
    """The registered model, or None when MLflow says it does not exist.

    Only MLflow's "does not exist" means absent: a connection error, a timeout, a 4xx/5xx or a
    database error behind the server raises RegistryError, so no caller reads an unreachable
    registry as "no champion" or "no history".
    """
    from mlflow.exceptions import MlflowException

    try:
        with quick_failures():
            return mlflow_client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == NOT_FOUND:
            return None
        raise unavailable(tracking_uri(mlflow_client), exc, doing) from None
    except Exception as exc:  # requests/SQLAlchemy errors that MLflow did not wrap
        raise unavailable(tracking_uri(mlflow_client), exc, doing) from None


def registry_write(mlflow_client, doing: str, call, *args) -> None:
    """One registry write, its failure named in one RegistryError line."""
    try:
        with quick_failures():
            call(*args)
    except Exception as exc:
        raise unavailable(tracking_uri(mlflow_client), exc, doing) from None
