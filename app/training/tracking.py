"""The MLflow server as training and the registry reach it: the client, the experiment, and
every failure named in one line (never a traceback, never read as "absent")."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from app.config import Settings
from app.errors import CreditRiskError

NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


class RegistryError(CreditRiskError):
    """MLflow is unreachable, or the registry is not in the state an operation needs."""


def _mask_urls(text: str) -> str:
    """Credentials in any URI (scheme://user:password@host) shown as ***."""
    return re.sub(r"://[^/@\s]+@", "://***@", text)


_TIMED_OUT = re.compile(r"timed out\. \((?:read|connect) timeout=([\d.]+)\)")
_REQUEST = re.compile(r"API request to \S+?://[^/\s]+(/[^?\s]*)\S* failed")


def _detail(exc: BaseException) -> str:
    """The first line of an MLflow failure, masked; for a failed HTTP request, the request and
    why (MLflow's own text buries the cause, a timeout included, at the end of a pool error
    that one line cannot hold)."""
    text = _mask_urls(str(exc).strip())
    request = _REQUEST.search(text)
    to = f" to {request.group(1)}" if request else ""
    timed_out = _TIMED_OUT.search(text)
    if timed_out:
        return f"timed out: no answer{to} within {timed_out.group(1)} s"
    if request and "(Caused by " in text:
        cause = text.split("(Caused by ", 1)[1].splitlines()[0].removesuffix(")")
        return f"request{to} failed: {cause}"[:300]
    return text.splitlines()[0][:300] if text else ""


def _describe(settings: Settings) -> str:
    # A database URI can carry a password: show the scheme and host part only.
    return f"MLflow at {_mask_urls(settings.mlflow_tracking_uri or '')}"


# MLflow reads its HTTP timeout and retry count from these variables at every request, for
# every thread of the process (its artifact downloads run on a pool of its own threads).
TIMEOUT_VAR = "MLFLOW_HTTP_REQUEST_TIMEOUT"
RETRIES_VAR = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"


@dataclass(frozen=True)
class HttpPolicy:
    """How long one MLflow HTTP request may wait for an answer, and how often it is retried."""

    timeout: int  # seconds; MLflow parses the variable as an integer
    retries: int


# Registry reads and writes: a failure is reported at once instead of after MLflow's minutes
# of retries (120 s timeout, 7 retries by default).
QUICK = HttpPolicy(timeout=10, retries=0)
# A model's artifact files: a stalled file gives up after 30 s, a dropped connection or a 5xx
# is tried twice more (within a load's deadline, see `load_deadline`).
DOWNLOAD = HttpPolicy(timeout=30, retries=2)

# The variables are the process's: a policy is in force only while its call holds this lock,
# so no thread ever runs with another thread's values. Re-entrant: a quick read inside a long
# transfer of the same thread sets its own values and puts the transfer's back.
_policy_lock = threading.RLock()
_local = threading.local()


@dataclass(frozen=True)
class _Deadline:
    at: float  # time.monotonic()
    seconds: float

    def passed(self) -> RegistryError:
        return RegistryError(
            f"MLflow did not answer within the {self.seconds:g} s model-load deadline "
            "(model_load_timeout_seconds): load given up"
        )


@contextmanager
def load_deadline(seconds: float) -> Iterator[None]:
    """Every MLflow call this thread makes inside ends by `seconds` from now: each request's
    timeout is cut to what is left, and a call once it has passed raises RegistryError."""
    outer = getattr(_local, "deadline", None)
    mine = _Deadline(time.monotonic() + seconds, seconds)
    _local.deadline = mine if outer is None or mine.at < outer.at else outer
    try:
        yield
    finally:
        _local.deadline = outer


@contextmanager
def http_policy(policy: HttpPolicy | None) -> Iterator[None]:
    """MLflow's HTTP requests inside (this thread's and MLflow's pool threads') use `policy`;
    None: the process's own values (MLflow's defaults unless the operator set the variables)."""
    deadline: _Deadline | None = getattr(_local, "deadline", None)
    if deadline is None:
        _policy_lock.acquire()
    elif deadline.at <= time.monotonic() or not _policy_lock.acquire(
        timeout=deadline.at - time.monotonic()
    ):
        raise deadline.passed()
    try:
        saved = {key: os.environ.get(key) for key in (TIMEOUT_VAR, RETRIES_VAR)}
        if policy is not None:
            timeout = policy.timeout
            if deadline is not None:
                # Every try fits in what is left, so the call ends by the deadline.
                left = deadline.at - time.monotonic()
                timeout = max(1, min(timeout, int(left / (policy.retries + 1))))
            os.environ[TIMEOUT_VAR] = str(timeout)
            os.environ[RETRIES_VAR] = str(policy.retries)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        _policy_lock.release()


def quick_failures():
    """Fail fast on an unreachable server instead of MLflow's minutes of retries."""
    return http_policy(QUICK)


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
                f"{settings.redact(_detail(exc))[:300]}"
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
    return RegistryError(
        f"MLflow at {_mask_urls(uri)} is unreachable or erroring while {doing}: "
        f"{type(exc).__name__}: {_detail(exc)}"
    )


@contextmanager
def failures_named(
    uri: str, doing: str, quick: bool = True, policy: HttpPolicy | None = None
) -> Iterator[None]:
    """MLflow failures inside as one RegistryError line (not a traceback, not "absent").
    `quick`: no retries and a short timeout (not for large artifact uploads, which run with
    the process's own values); `policy`, when given, instead of either."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        with http_policy(policy or (QUICK if quick else None)):
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
