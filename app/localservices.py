"""Local instances of the real services (Redis, fakesnow's Snowflake server, `mlflow server`)
for tests, benchmarks and trying the Snowflake path without an account, each a ManagedProcess."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.waiting import poll


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiet_port(low: int = 20_000, high: int = 30_000) -> int:
    """A free port for a listener that starts later (HAProxy's stats and metrics): from a range
    nothing else hands out. `free_port` gives a kernel ephemeral port (32768-60999), which the
    many connections Ray opens meanwhile can take; Ray's workers use 10002-19999 and Serve's
    replicas 30000-31000 (HTTP) and 40000-41000 (gRPC)."""
    for port in random.sample(range(low, high), 200):
        if bindable(port):
            return port
    raise OSError(f"no free port in {low}-{high - 1} after 200 tries")


def bindable(port: int) -> bool:
    """Nothing listens on `port` on any interface."""
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


# HAProxy's backends listen on ports every Ray hands out alike. Serve's fallback proxy, the
# backup HAProxy sends requests to while no replica is up (as around a redeploy), binds
# RAY_SERVE_FALLBACK_PROXY_{HTTP,GRPC}_PORT, 8500 and 9500, with SO_REUSEPORT: a second Ray on
# the machine binds them too and the kernel gives it part of the first one's traffic (seen: a
# test's decisions answered 401 by a main job's app). The replicas (direct ingress) take ports
# from RAY_SERVE_DIRECT_INGRESS_{MIN,MAX}_{HTTP,GRPC}_PORT, 30000-31000 and 40000-41000; a port
# a stopped replica freed is held back while HAProxy may still route to it
# (RAY_SERVE_PORT_QUARANTINE_S), but only from that Ray's replicas. So a Ray this project starts
# on a machine takes a block of its own for all of them, from above the kernel's ephemeral
# range (Linux: 32768-60999), clear of Serve's defaults and of `quiet_port`'s range.
BACKEND_PORT_RANGE = range(61_000, 65_400)
BACKEND_PORT_BLOCK = 200  # HTTP's half, then gRPC's: the fallback proxy's port, the replicas'


def backend_port_block() -> int:
    """The first port of a block of BACKEND_PORT_BLOCK ports that no other process of ours has
    claimed and nothing listens on. The claim is a lock held until this process (the one that
    starts the Ray) exits: a Ray whose replicas have not bound their ports yet holds its block
    too."""
    starts = list(range(BACKEND_PORT_RANGE.start, BACKEND_PORT_RANGE.stop, BACKEND_PORT_BLOCK))
    for start in random.sample(starts, len(starts)):
        claim = _claim_block(start)
        if claim is None:
            continue
        if all(bindable(port) for port in range(start, start + BACKEND_PORT_BLOCK)):
            return start  # the lock's descriptor stays open, and the lock held, on purpose
        os.close(claim)
    raise OSError(
        f"no block of {BACKEND_PORT_BLOCK} free ports in {BACKEND_PORT_RANGE.start}-"
        f"{BACKEND_PORT_RANGE.stop - 1} for Serve's backends: every one is in use"
    )


def _claim_block(start: int) -> int | None:
    """An open descriptor holding the block's lock, or None when another process holds it."""
    folder = Path(tempfile.gettempdir()) / f"credit-backend-ports-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(folder / f"{start}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class ManagedProcess:
    """A process we started, in its own session: stop() signals that process group and nothing
    else on the machine (never `pkill` by name)."""

    name: str
    process: subprocess.Popen
    port: int | None = None
    log_path: Path | None = None
    data_dir: Path | None = None

    @classmethod
    def launch(
        cls,
        name: str,
        argv: list[str],
        *,
        port: int | None = None,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        data_dir: Path | None = None,
    ) -> ManagedProcess:
        """Start `argv` with its output to `log_path` (discarded without one)."""
        with open(log_path, "ab") if log_path else contextlib.nullcontext() as out:
            process = subprocess.Popen(
                argv,
                stdout=out or subprocess.DEVNULL,
                stderr=subprocess.STDOUT if out else subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        return cls(name, process, port, log_path, data_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _check_alive(self) -> None:
        if not self.alive():
            log = f" (log: {self.log_path}):\n{self.log_tail()}" if self.log_path else ""
            raise RuntimeError(f"{self.name} exited with code {self.process.returncode}{log}")

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float, interval=0.1):
        """Until `ready()` is true (an OSError counts as not yet); RuntimeError if the process
        died, WaitTimeout naming `what` when `timeout` s have passed."""

        def check() -> bool:
            self._check_alive()
            with contextlib.suppress(OSError):
                return ready()
            return False

        poll(check, f"{self.name} {what}", timeout, interval)

    def wait_listening(self, timeout: float = 60) -> None:
        """Until something accepts connections on the port."""
        assert self.port is not None
        self.wait_until(lambda: port_open(self.port), f"listening on port {self.port}", timeout)

    def wait_http(self, path: str, timeout: float = 60) -> None:
        """Until GET `path` answers 200."""

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=3) as response:
                return response.status == 200

        self.wait_until(healthy, f"answering {path}", timeout, interval=0.5)

    def stop(self, grace: float = 15) -> None:
        """SIGTERM to the group, SIGKILL whatever is left after `grace` s; idempotent."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def start_redis(port: int | None = None, data_dir: Path | None = None) -> ManagedProcess:
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
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", *persistence]
    redis = ManagedProcess.launch("redis-server", argv, port=port, data_dir=data_dir)
    redis.wait_listening()
    return redis


def restart_redis(redis: ManagedProcess) -> None:
    """Start a stopped Redis again on its port and data directory, in the same object."""
    redis.process = start_redis(redis.port, redis.data_dir).process


def start_fakesnow(log_path: Path) -> ManagedProcess:
    """fakesnow's server mode on a free port: the real Snowflake connector talks HTTP to it."""
    port = free_port()
    argv = [sys.executable, "-m", "fakesnow", "-s", "-p", str(port)]
    fakesnow = ManagedProcess.launch("fakesnow", argv, port=port, log_path=log_path)
    fakesnow.wait_listening()
    return fakesnow


def start_mlflow_server(
    root: Path,
    backend_uri: str,
    registry_uri: str | None = None,
    timeout: float = 180,
    wait: bool = True,
) -> ManagedProcess:
    """`mlflow server` on `backend_uri` (and `registry_uri`, if the registry is kept apart),
    artifacts proxied to `root`/artifacts, log in `root`/server.log; returns once /health
    answers (or at once without `wait`: call wait_http("/health") before using it)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")},
        # The server's job runner (GenAI jobs) starts a dozen consumers we do not use.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    argv = [str(Path(sys.executable).with_name("mlflow")), "server"]
    argv += ["--backend-store-uri", backend_uri]
    argv += ["--registry-store-uri", registry_uri] if registry_uri else []
    argv += ["--artifacts-destination", str(root / "artifacts")]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = ManagedProcess.launch(
        "mlflow server",
        argv,
        port=port,
        log_path=root / "server.log",
        env=env,
        cwd=root,
        data_dir=root,
    )
    if wait:
        try:
            server.wait_http("/health", timeout)
        except Exception:
            server.stop()
            raise
    return server
