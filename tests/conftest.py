"""Shared fixtures: one real local Ray per session, a private fakesnow server and Redis."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 60) -> None:
    """Poll until something accepts connections on the port (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Service:
    port: int
    process: subprocess.Popen

    def stop(self) -> None:
        stop_process(self.process)


def start_redis() -> Service:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process, "redis-server")
    return Service(port, process)


@pytest.fixture(scope="session")
def redis_service() -> Iterator[Service]:
    """A private Redis, so tests can stop it without touching anyone else's."""
    service = start_redis()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def fakesnow_service(tmp_path_factory) -> Iterator[Service]:
    """fakesnow's server mode: the real Snowflake connector talks HTTP to it."""
    port = free_port()
    log = tmp_path_factory.mktemp("fakesnow") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "fakesnow", "-s", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, process, f"fakesnow (log: {log})")
    yield Service(port, process)
    stop_process(process)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One real local Ray for the whole run (starting one costs 10-30 s here)."""
    import ray

    from app.runtime import configure_ray_data

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
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
