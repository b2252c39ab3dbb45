"""Helpers the tests share (fixtures live in conftest.py files, helpers here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.localservices import free_port, quiet_port, start_redis
from app.waiting import WaitTimeout, poll

__all__ = [
    "ROOT",
    "free_port",
    "isolated_settings",
    "quiet_port",
    "run_job",
    "snowflake_overrides",
    "start_redis",
    "wait_for",
]

ROOT = Path(__file__).resolve().parents[2]


def wait_for(check, what: str, timeout: float = 60.0, interval: float = 0.2):
    """app.waiting.poll, failing the test (AssertionError) when the deadline passes."""
    try:
        return poll(check, what, timeout, interval)
    except WaitTimeout as exc:
        raise AssertionError(f"timed out: {exc}") from None


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


def isolated_settings(**overrides):
    """Settings from these overrides alone, whatever CREDIT_* the shell has (for fixtures wider
    than a test, which the per-test `make_settings` cannot serve)."""
    from app.config import load_settings

    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("CREDIT_")]:
            env.delenv(name)
        return load_settings(_env_file=None, **overrides)


def run_job(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m <job> ...` as a user runs it: the shell's environment without CREDIT_*,
    plus `env`; output captured."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
