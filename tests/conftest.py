"""Shared fixtures: one real local Ray per session, a private fakesnow server and Redis."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.config import Settings, load_settings
from app.localservices import Service, free_port, start_fakesnow, start_redis

__all__ = ["ROOT", "free_port", "snowflake_overrides", "start_redis", "wait_for"]

ROOT = Path(__file__).resolve().parents[1]


def wait_for(check, what: str, timeout: float = 60.0, interval: float = 0.2):
    """Poll `check` until it returns something other than None/False, within a deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last is not None and last is not False:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def redis_service() -> Iterator[Service]:
    """A private Redis, so tests can stop it without touching anyone else's."""
    service = start_redis()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def fakesnow_service(tmp_path_factory) -> Iterator[Service]:
    service = start_fakesnow(tmp_path_factory.mktemp("fakesnow") / "server.log")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One real local Ray for the whole run (starting one costs 10-30 s here)."""
    import ray
    from ray._private.parameter import RayParams

    from app.runtime import configure_ray_data

    # With its dashboard: the drift monitor submits retraining through the Ray Jobs API.
    # Jobs are handed to the node's dashboard agent, which listens on a fixed default port
    # (52365) that ray.init cannot change; any other Ray on the machine holding it leaves the
    # session without an agent ("No available agent to submit job"), so pick a free one.
    original = RayParams.__init__
    agent_port = free_port()

    def with_free_agent_port(self, *args, **kwargs):
        kwargs.setdefault("dashboard_agent_listen_port", agent_port)
        original(self, *args, **kwargs)

    RayParams.__init__ = with_free_agent_port
    try:
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=free_port(),
            log_to_driver=False,
        )
    finally:
        RayParams.__init__ = original
    configure_ray_data()
    yield
    ray.shutdown()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings rooted in a fresh temp dir, ignoring any CREDIT_* of the developer's shell."""

    def make(**overrides) -> Settings:
        overrides.setdefault("data_dir", tmp_path / "data")
        overrides.setdefault("_env_file", None)
        return load_settings(**overrides)

    return make


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CREDIT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(ROOT)


def snowflake_overrides(port: int, **extra) -> dict:
    return {
        "snowflake_account": "fake",
        "snowflake_user": "tester",
        "snowflake_password": "planted-secret-pw",
        "snowflake_host": "127.0.0.1",
        "snowflake_port": port,
        "snowflake_protocol": "http",
        **extra,
    }
