"""Local instances of the real services (Redis, fakesnow's Snowflake server) for tests,
benchmarks and trying the Snowflake path without an account."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


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
    """A server process we started, on its own port; stopping it touches nothing else."""

    port: int
    process: subprocess.Popen
    data_dir: Path | None = None

    def stop(self) -> None:
        stop_process(self.process)


def start_redis(port: int | None = None, data_dir: Path | None = None) -> Service:
    """A private Redis on a free port (needs `redis-server` on PATH). Non-persistent unless
    given a directory: then an append-only file there lets a restart on the same port come
    back with its data, as a production Redis would."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (e.g. apt-get install redis-server)")
    port = port or free_port()
    persistence = ["--appendonly", "no"]
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(data_dir)]
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", *persistence],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process, "redis-server")
    return Service(port, process, data_dir)


def restart_redis(service: Service) -> None:
    """Start a stopped Redis again on its port and data directory, in the same Service."""
    service.process = start_redis(service.port, service.data_dir).process


def start_fakesnow(log_path: Path) -> Service:
    """fakesnow's server mode on a free port: the real Snowflake connector talks HTTP to it."""
    port = free_port()
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "fakesnow", "-s", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, process, f"fakesnow (log: {log_path})")
    return Service(port, process)
