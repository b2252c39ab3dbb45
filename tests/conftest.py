"""Shared fixtures: one real local Ray per session, a private fakesnow server and Redis."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.config import Settings, load_settings
from app.localservices import ManagedProcess, free_port, start_fakesnow, start_redis
from tests.utils import ROOT


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--ray-group",
        choices=("own", "shared"),
        help="only the tests that start a Ray of their own (own_ray), or only the others: "
        "scripts/test.sh runs the two groups in two pytest processes side by side",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--ray-group` keeps one of the two groups. Run together in one process, the tests that
    start a Ray of their own come first, before the session's Ray exists, so that a plain
    `pytest` never has the two Rays at once."""
    group = config.getoption("--ray-group")
    if group:
        own = group == "own"
        keep = [item for item in items if (item.get_closest_marker("own_ray") is not None) == own]
        kept = set(keep)
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = keep
    items.sort(key=lambda item: item.get_closest_marker("own_ray") is None)


@pytest.fixture(scope="session")
def redis_service() -> Iterator[ManagedProcess]:
    """A private Redis, so tests can stop it without touching anyone else's."""
    service = start_redis()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def fakesnow_service(tmp_path_factory) -> Iterator[ManagedProcess]:
    service = start_fakesnow(tmp_path_factory.mktemp("fakesnow") / "server.log")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One real local Ray for the whole run (starting one costs 10-30 s here)."""
    import ray
    from ray._private.parameter import RayParams

    from app.runtime import configure_ray_data, serve_ingress_env
    from tests.utils import isolated_settings

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
        # The serving tests run behind the ingress the project ships (HAProxy by default).
        with serve_ingress_env(isolated_settings()):
            ray.init(
                address="local",
                num_cpus=2,
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                dashboard_port=free_port(),
                log_to_driver=False,
                # Application metrics reach the Prometheus endpoint within a second instead of 10 s.
                _system_config={"metrics_report_interval_ms": 1000},
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
