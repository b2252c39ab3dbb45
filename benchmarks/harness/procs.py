"""Processes the benchmarks start: servers as process trees (app.localservices'
ManagedProcess plus the memory of every descendant), one local Ray, and the run's work dir."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil

from app.localservices import ManagedProcess
from app.waiting import WaitTimeout
from benchmarks.harness.machine import Proc, sample, tree, wait_quiet

ROOT = Path(__file__).resolve().parents[2]
NOISY_LOGGERS = ("feast", "ray", "ray.data", "ray.serve", "ray.train", "snowflake.connector")
# Ray 2.60's raylet aborts when its dashboard agent has not written its port file within 15 s;
# ray.init then fails with this (on a machine busy with other jobs).
RAY_START_FAILURE = "timed out during startup"
T = TypeVar("T")


def quiet() -> None:
    """Silence library chatter (again after Ray starts: it resets some of it)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="On demand feature view is an experimental")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass
class ServiceProcess(ManagedProcess):
    """A server we started and everything it started: where the load goes, which of its
    processes count as the service (None: all), and directories to remove once it stopped."""

    url: str = ""
    grpc: str = ""  # host:port of its gRPC service (the Open Inference Protocol's), if any
    counts: Callable[[Proc], bool] | None = None
    monitor_dir: Path | None = None
    cleanup: list[Path] = field(default_factory=list)

    def tree(self) -> list[psutil.Process]:
        return tree(self.process.pid)

    def counted(self, proc: Proc) -> bool:
        return self.counts is None or self.counts(proc)

    def rss(self) -> tuple[int, int]:
        """(RSS of the processes the service counts, RSS of the whole tree), bytes."""
        procs = sample(self.tree())
        return sum(p.rss for p in procs if self.counted(p)), sum(p.rss for p in procs)

    def pss(self) -> tuple[int, int]:
        """(PSS of the processes the service counts, PSS of the whole tree), bytes."""
        procs = sample(self.tree(), uss=True)
        counted = sum(p.pss or 0 for p in procs if self.counted(p))
        return counted, sum(p.pss or 0 for p in procs)

    def log_lines(self, prefix: str) -> list[str]:
        """The log's lines that start with `prefix`, without it."""
        text = self.log_tail(10**9) if self.log_path else ""
        return [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        """Until `ready()` (RuntimeError with the log's end if the process dies or times out)."""

        try:
            self.wait_until(ready, "ready", timeout, interval=0.25)
        except WaitTimeout as exc:
            raise RuntimeError(f"{exc}:\n{self.log_tail()}") from None

    def stop(self, grace: float = 20) -> None:
        """SIGTERM to the root alone (a server, or ours' driver, shuts its own children down),
        then SIGKILL to what is left of the tree and of the process group."""
        procs = self.tree()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        _, alive = psutil.wait_procs(procs, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=10)
        super().stop(grace=0)
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)


def start_service(
    name: str,
    argv: list[str],
    url: str,
    ready: Callable[[], bool],
    check: Callable[[ServiceProcess], None],
    *,
    log_path: Path,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
) -> ServiceProcess:
    """`argv` launched in its own session, returned once `ready()` and `check` passed; stopped
    if either fails."""
    service = ServiceProcess.launch(name, argv, log_path=log_path, env=env, cwd=cwd)
    service.url = url
    try:
        service.wait_ready(ready, timeout)
        check(service)
    except BaseException:
        service.stop()
        raise
    return service


def http(
    method: str, url: str, body: str | bytes | None = None, timeout: float = 10, **headers: str
) -> tuple[int, bytes]:
    """(status, body) of one request; HTTP errors are answers too."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def child_env(other_venv: bool = False, drop: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment for a child: without the variables that start with `drop`
    and, for a program of another virtualenv, without this one's marks."""
    env = {k: v for k, v in os.environ.items() if not (drop and k.startswith(drop))}
    if other_venv:
        venv_bin = str(Path(sys.executable).parent)
        env = {k: v for k, v in env.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
        paths = env.get("PATH", "").split(os.pathsep)
        env["PATH"] = os.pathsep.join(p for p in paths if p != venv_bin)
    return env | extra


@contextlib.contextmanager
def local_ray(num_cpus: int = 2) -> Iterator[None]:
    """A private local Ray for this process (never one already running on the machine)."""
    import ray

    from app.runtime import configure_ray_data

    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        quiet()
        configure_ray_data()
        yield
    finally:
        ray.shutdown()


def retry_ray_start(what: str, attempts: int, quiet_wait: float, start: Callable[[int], T]) -> T:
    """`start(attempt)`, again after waiting for a quieter machine when Ray did not start."""
    for attempt in range(1, attempts + 1):
        try:
            return start(attempt)
        except Exception as exc:
            if RAY_START_FAILURE not in str(exc) or attempt == attempts:
                raise
            import ray

            ray.shutdown()  # a no-op unless this process's own ray.init half started
            print(
                f"  {what}: Ray did not start (its raylet gave up on its agents after 15 s: "
                f"load average {os.getloadavg()[0]:.1f}); attempt {attempt + 1} of {attempts}"
            )
            wait_quiet(quiet_wait)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def work_dir(prefix: str, keep: bool = False, under: Path | None = None) -> Iterator[Path]:
    """A fresh directory for the run's data, models and logs, deleted at the end unless kept."""
    if under is not None:
        under.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=under))
    (path / "logs").mkdir()
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)
