"""Samples of ours' Ray tree and of the machine, taken on a thread of their own: every few
seconds from the warm-up's start, and with USS at the measured load's start and end."""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks.harness.machine import Proc, busy_seconds, own_seconds, sample
from benchmarks.harness.procs import ServiceProcess

SERVE_GROUPS = ("controller", "proxy", "replicas", "drift monitor")
# agents: the dashboard head, dashboard and runtime-env agents, autoscaler and log monitors.
RAY_GROUPS = ("driver", "gcs", "raylet", "agents", "idle workers", "other ray")
SERVE_ALL, RAY_ALL = "Serve app", "Ray tree"
TITLES = (  # Ray sets its workers' titles to "ray::<Actor>[.<method>]"
    ("ray::ServeController", "controller"),
    ("ray::ProxyActor", "proxy"),
    ("ray::ServeReplica", "replicas"),
    ("ray::DriftMonitor", "drift monitor"),
    ("ray::IDLE", "idle workers"),
    ("ray::DashboardAgent", "agents"),
    ("ray::RuntimeEnvAgent", "agents"),
)
PROGRAMS = {"gcs_server": "gcs", "raylet": "raylet"}
AGENT_SCRIPTS = ("/dashboard.py", "/log_monitor.py", "/monitor.py")


def group_of(proc: Proc, driver: int) -> str:
    if proc.pid == driver:
        return "driver"
    for prefix, group in TITLES:
        if proc.title.startswith(prefix):
            return group
    if proc.program in PROGRAMS:
        return PROGRAMS[proc.program]
    if "default_worker.py" in proc.title:  # a worker still starting (no ray:: title yet)
        return "idle workers"
    return "agents" if any(s in proc.title for s in AGENT_SCRIPTS) else "other ray"


@dataclass
class Sample:
    at: float  # time.monotonic() when taken
    groups: dict[str, int]  # group -> RSS bytes (plus SERVE_ALL and RAY_ALL)
    counts: dict[str, int]  # group -> processes
    processes: dict[str, dict[str, Any]]  # "pid" -> group, title, rss (uss when read)
    uss: dict[str, int] | None  # group -> USS bytes, at the start and the end only
    cpu: dict[int, float]  # pid -> user + system CPU s of the tree's processes
    busy: float  # machine busy CPU s (all cores) since boot
    own_cpu: float  # this process's CPU s
    loadavg: tuple[float, float, float]
    redis_rss: int
    shm_used: int  # /dev/shm bytes in use (Ray's object store lives there)
    spool_files: int  # the drift monitor's spooled batches (rows not yet checked)
    spool_bytes: int
    checks: int  # the drift monitor's results/*.json
    predlog_parts: int  # prediction-log Parquet parts written
    predlog_bytes: int
    seconds: float = 0.0  # how long taking the sample took
    t: float = math.nan  # s since the start of the measured load (negative: warm-up)


def dir_stats(folder: Path | None, pattern: str) -> tuple[int, int]:
    """(files, bytes) matching `pattern` below `folder`."""
    sizes = []
    for path in folder.rglob(pattern) if folder is not None and folder.exists() else ():
        try:
            sizes.append(path.stat().st_size)
        except OSError:
            continue
    return len(sizes), sum(sizes)


def groups_of(procs: list[Proc], driver: int, uss: bool) -> tuple[Counter, Counter, Counter, dict]:
    """RSS, process count and USS per group (with the Serve and Ray totals), and per process."""
    rss, counts, private, processes = Counter(), Counter(), Counter(), {}
    for p in procs:
        group = group_of(p, driver)
        rss[group] += p.rss
        counts[group] += 1
        processes[str(p.pid)] = {"group": group, "title": p.title.strip()[:120], "rss": p.rss}
        if uss and p.uss is not None:
            private[group] += p.uss
            processes[str(p.pid)]["uss"] = p.uss
    for totals in (rss, counts, private):
        serve, ray = sum(totals[g] for g in SERVE_GROUPS), sum(totals.values())
        totals[SERVE_ALL], totals[RAY_ALL] = serve, ray
    return rss, counts, private, processes


class Sampler:
    """Samples `service`'s tree every `every` s from the warm-up's start, at the measured
    load's start (with USS) and every `every` s from it, and at its end (with USS)."""

    def __init__(self, service: ServiceProcess, redis_pid: int, predlog: Path, every: float):
        self.service, self.redis_pid, self.predlog, self.every = service, redis_pid, predlog, every
        self.samples: list[Sample] = []
        self.marks: dict[str, float] = {}
        self._stop, self._wake = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, uss: bool = False) -> Sample:
        at, started = time.monotonic(), time.perf_counter()
        procs = sample(self.service.tree(), uss)
        rss, counts, private, processes = groups_of(procs, self.service.process.pid, uss)
        try:
            redis_rss = psutil.Process(self.redis_pid).memory_info().rss
        except psutil.Error:
            redis_rss = 0
        monitor = self.service.monitor_dir
        spool = dir_stats(monitor and monitor / "spool", "*.arrow")
        checks = dir_stats(monitor and monitor / "results", "*.json")[0]
        shm = shutil.disk_usage("/dev/shm").used if Path("/dev/shm").exists() else 0
        predlog = dir_stats(self.predlog, "*.parquet")
        found = Sample(
            at=at,
            groups=dict(rss),
            counts=dict(counts),
            processes=processes,
            uss=dict(private) if uss else None,
            cpu={p.pid: p.cpu for p in procs},
            busy=busy_seconds(),
            own_cpu=own_seconds(),
            loadavg=psutil.getloadavg(),
            redis_rss=redis_rss,
            shm_used=shm,
            spool_files=spool[0],
            spool_bytes=spool[1],
            checks=checks,
            predlog_parts=predlog[0],
            predlog_bytes=predlog[1],
        )
        found.seconds = time.perf_counter() - started
        self.samples.append(found)
        return found

    def mark(self, phase: str, at: float) -> None:
        """The measured load starts ("load") or ends ("end") at `at` (time.monotonic)."""
        self.marks[phase] = at
        self._wake.set()

    def _loop(self, next_at: float) -> None:
        load_sampled = False
        while not self._stop.is_set():
            load_at, end_at = self.marks.get("load"), self.marks.get("end")
            due = min(
                next_at, *([load_at] if load_at and not load_sampled else []), end_at or math.inf
            )
            if (wait := due - time.monotonic()) > 0:  # woken early by mark(): plan again
                self._wake.wait(wait)
                self._wake.clear()
                continue
            if due == end_at:
                self.take(uss=True)
                return
            if due == load_at and not load_sampled:
                self.take(uss=True)
                load_sampled, next_at = True, load_at + self.every
                continue
            self.take()
            next_at += self.every

    def start(self, warm_start: float) -> None:
        self._thread = threading.Thread(target=self._loop, args=(warm_start,), daemon=True)
        self._thread.start()

    def timed(self, load_start: float) -> list[Sample]:
        for s in self.samples:
            s.t = round(s.at - load_start, 3)
        return list(self.samples)

    def join(self, timeout: float) -> None:
        """Until the end's sample is taken (at most `timeout` s)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


def other_processes_cpu(exclude: set[int]) -> dict[int, tuple[str, float]]:
    """pid -> (name, CPU s) of every process on the machine but `exclude`."""
    seen = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if proc.pid not in exclude and times is not None:
            seen[proc.pid] = (proc.info["name"] or "?", times.user + times.system)
    return seen
