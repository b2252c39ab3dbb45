"""Soak: our Ray Serve decision service under a steady, open-loop request rate for 5 minutes,
with its memory sampled throughout: does it hold the rate with no errors and no RSS growth?

Self-contained, built from benchmarks/serving.py's functions (imported, not copied): a private
redis-server, `--applicants` synthetic applicants ingested and materialized into it, one XGBoost
booster registered as the champion in the run's own MLflow with its drift reference, and
`app.serving.app:build_app` deployed by serving.py's child driver (`serve.run` on its own local
Ray with `--cpus` CPUs) with serve_config.yaml's `deployments[0]` settings AS DEPLOYED,
autoscaling included (1 replica, up to 2; serving.py's benchmark pins 1 replica instead) and the
drift monitor on (its check every 1,000 rows, with its HTML report, on the same cores).

The load is open loop: request i is due at start + i / `--rate`, and is sent then whatever the
earlier ones are doing (asyncio + aiohttp, up to `--connections` keep-alive connections), so a
slow service shows up as latency, not as a lower rate. Latency is measured from the moment a
request was due (so time spent waiting for a free connection counts), with the time from the
actual send beside it. The bodies are serving.py's: `ours_body` of the `--bodies` applicants it
picks (known ids), rotated. A warm-up at the same rate comes first (not counted): at least
`--warmup` s and until the drift monitor has finished `--warmup-checks` checks (default 1, at
most `--warmup-max` s): its first check imports Evidently and MLflow and loads the reference,
~300 MiB once, which is start-up, not growth (at 20 req/s a check is due every ~50 s, the first
one done after ~60-90 s). Then `--seconds` s measured. Each answer is kept: status, latency, and
for errors their kind (HTTP status, or the transport error: timeout after `--timeout` s,
connect, disconnect...); a 200 whose body is not a decision for the asked applicant counts as an
error too ("bad 200 body").

Every `--sample-every` s (from the start of the warm-up): the RSS of every process of the
driver's tree, grouped: the Serve application (controller, proxy, replicas, the drift monitor
actor) and the rest of Ray (driver, GCS, raylet, agents, idle workers); the whole tree is the
Ray figure. Also the replica count, the monitor's spool (rows waiting for a check) and its
check results, the prediction log's Parquet parts, /dev/shm, the private Redis, and the
machine: load average and the CPU cores used by the Ray tree, by this process (the load
generator) and by everything else (other people's jobs on a shared machine). USS (memory
private to each process) is read at the start and the end of the measured load too.

Reported: requests sent, achieved rate, errors by kind, latency p50/p95/p99/max per minute and
overall, RSS per process group at the start of the measured load (after the warm-up) and at its
end with the growth in % and the trend (least squares over the samples, MiB/min), the replica
count (the autoscaler may add one: ~460 MiB), the growth of the processes alive at both ends
when the set changed, and one PASS/FAIL line against the targets: zero errors, RSS growth under
10% for both the Serve application and the whole Ray tree (all their processes: a replica added
under load counts). A Ray that does not start (Ray 2.60's raylet gives its agents 15 s, too
little on an overloaded machine) is started again, up to `--start-attempts` times. `--markdown`
prints the results as tables; `--json` writes every request and sample. `--wait-quiet S` waits
up to S s for an idle machine (serving.py's `wait_quiet`) before the setup and again before the
warm-up. The exit code is 0 on PASS, 1 on FAIL.

    .venv/bin/python benchmarks/soak.py --markdown                 # >= 60 s warm-up + 5 min
    .venv/bin/python benchmarks/soak.py --rate 30 --seconds 600 --json /tmp/soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

# `python benchmarks/soak.py`: the script's folder is on sys.path, so its sibling imports.
from serving import (
    AUTH_HEADERS,
    DEFAULT_SERVE_CONFIG,
    MIB,
    Running,
    build_workload,
    busy_seconds,
    describe_monitor,
    monitor_summary,
    ours_body,
    ours_ready,
    parse_variant,
    quiet,
    start_ours,
    wait_quiet,
)

GROWTH_TARGET = 0.10  # RSS at the end of the load at most 10% above its start
# Process groups, in report order: the Serve application's, then the rest of the Ray tree.
SERVE_GROUPS = ("controller", "proxy", "replicas", "drift monitor")
# agents: the dashboard head, dashboard and runtime-env agents, autoscaler and log monitors.
RAY_GROUPS = ("driver", "gcs", "raylet", "agents", "idle workers", "other ray")
GROUP_TITLES = (  # cmdline prefix -> group (Ray sets its workers' titles "ray::<Actor>[.<method>]")
    ("ray::ServeController", "controller"),
    ("ray::ProxyActor", "proxy"),
    ("ray::ServeReplica", "replicas"),
    ("ray::DriftMonitor", "drift monitor"),
    ("ray::IDLE", "idle workers"),
)
SERVE_ALL = "Serve app"
RAY_ALL = "Ray tree"


# --- process groups and samples ------------------------------------------------------------


def group_of(proc: psutil.Process, driver_pid: int) -> str:
    if proc.pid == driver_pid:
        return "driver"
    command = proc.cmdline()
    title = " ".join(command)
    for prefix, group in GROUP_TITLES:
        if title.startswith(prefix):
            return group
    if command and Path(command[0]).name == "gcs_server":
        return "gcs"
    if command and Path(command[0]).name == "raylet":
        return "raylet"
    if "default_worker.py" in title:  # a worker still starting (no ray:: title yet)
        return "idle workers"
    if title.startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent")) or any(
        f"/{script}" in title for script in ("dashboard.py", "log_monitor.py", "monitor.py")
    ):
        return "agents"
    return "other ray"


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
    t: float = math.nan  # s since the start of the measured load (negative: warm-up), set after


def dir_stats(folder: Path | None, pattern: str) -> tuple[int, int]:
    if folder is None or not folder.exists():
        return 0, 0
    files = sizes = 0
    for path in folder.rglob(pattern):
        try:
            sizes += path.stat().st_size
            files += 1
        except OSError:
            continue
    return files, sizes


class Sampler:
    """Samples the Ray tree of `running` (and the machine) on a thread of its own: every
    `every` s from the warm-up's start, then at the measured load's start (with USS) and every
    `every` s from it, and at its end (with USS)."""

    def __init__(
        self,
        running: Running,
        redis_pid: int,
        predlog_dir: Path,
        every: float,
    ) -> None:
        self.running = running
        self.redis_pid = redis_pid
        self.predlog_dir = predlog_dir
        self.every = every
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._load_at: float | None = None
        self._end_at: float | None = None
        self._thread: threading.Thread | None = None

    def take(self, uss: bool = False) -> Sample:
        at = time.monotonic()
        started = time.perf_counter()
        driver = self.running.process.pid
        groups: dict[str, int] = {}
        counts: dict[str, int] = {}
        ussed: dict[str, int] = {}
        processes: dict[str, dict[str, Any]] = {}
        cpu: dict[int, float] = {}
        for proc in self.running.tree():
            try:
                with proc.oneshot():
                    group = group_of(proc, driver)
                    if uss:
                        info = proc.memory_full_info()
                        rss, private = info.rss, info.uss
                    else:
                        rss, private = proc.memory_info().rss, None
                    times = proc.cpu_times()
                    title = " ".join(proc.cmdline()).strip()[:120]
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            groups[group] = groups.get(group, 0) + rss
            counts[group] = counts.get(group, 0) + 1
            if private is not None:
                ussed[group] = ussed.get(group, 0) + private
            processes[str(proc.pid)] = {"group": group, "title": title, "rss": rss}
            if private is not None:
                processes[str(proc.pid)]["uss"] = private
            cpu[proc.pid] = times.user + times.system
        for totals in (groups, counts, ussed):
            totals[SERVE_ALL] = sum(totals.get(g, 0) for g in SERVE_GROUPS)
            totals[RAY_ALL] = sum(v for k, v in totals.items() if k != SERVE_ALL)
        try:
            redis_rss = psutil.Process(self.redis_pid).memory_info().rss
        except psutil.Error:
            redis_rss = 0
        monitor_dir = self.running.monitor_dir
        spool_files, spool_bytes = dir_stats(monitor_dir and monitor_dir / "spool", "*.arrow")
        checks, _ = dir_stats(monitor_dir and monitor_dir / "results", "*.json")
        parts, part_bytes = dir_stats(self.predlog_dir, "*.parquet")
        try:
            shm = shutil.disk_usage("/dev/shm").used
        except OSError:
            shm = 0
        own = os.times()
        sample = Sample(
            at=at,
            groups=groups,
            counts=counts,
            processes=processes,
            uss=ussed if uss else None,
            cpu=cpu,
            busy=busy_seconds(),
            own_cpu=own.user + own.system,
            loadavg=os.getloadavg(),
            redis_rss=redis_rss,
            shm_used=shm,
            spool_files=spool_files,
            spool_bytes=spool_bytes,
            checks=checks,
            predlog_parts=parts,
            predlog_bytes=part_bytes,
        )
        sample.seconds = time.perf_counter() - started
        self.samples.append(sample)
        return sample

    def mark(self, phase: str, at: float) -> None:
        """The measured load starts ("load") or ends ("end") at `at` (time.monotonic)."""
        if phase == "load":
            self._load_at = at
        else:
            self._end_at = at
        self._wake.set()

    def start(self, warm_start: float) -> None:
        def loop() -> None:
            next_at, load_sampled = warm_start, False
            while not self._stop.is_set():
                load_at, end_at = self._load_at, self._end_at
                due = next_at
                if load_at is not None and not load_sampled:
                    due = min(due, load_at)
                if end_at is not None:
                    due = min(due, end_at)
                wait = due - time.monotonic()
                if wait > 0:  # woken early by mark(): plan again
                    self._wake.wait(wait)
                    self._wake.clear()
                    continue
                if end_at is not None and due == end_at:
                    self.take(uss=True)
                    return
                if load_at is not None and not load_sampled and due == load_at:
                    self.take(uss=True)
                    load_sampled, next_at = True, load_at + self.every
                    continue
                self.take()
                next_at += self.every

        self._thread = threading.Thread(target=loop, name="soak-sampler", daemon=True)
        self._thread.start()

    def timed(self, load_start: float) -> list[Sample]:
        for sample in self.samples:
            sample.t = round(sample.at - load_start, 3)
        return list(self.samples)

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        self._stop.set()
        self.join(30)


def other_processes_cpu(exclude: set[int]) -> dict[int, tuple[str, float]]:
    """pid -> (name, CPU s) of every process on the machine but `exclude`."""
    seen = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.pid in exclude or proc.info["cpu_times"] is None:
            continue
        times = proc.info["cpu_times"]
        seen[proc.pid] = (proc.info["name"] or "?", times.user + times.system)
    return seen


# --- the open-loop load --------------------------------------------------------------------


@dataclass
class Answer:
    index: int
    due: float  # time.monotonic() when due; then s since the measured load's start (< 0: warm-up)
    lag_ms: float  # how late the request left after it was due (client-side)
    status: int  # HTTP status, 0 on a transport error
    latency_ms: float  # from due to the end of the response
    service_ms: float  # from the actual send to the end of the response
    error: str | None  # None: a good 200


@dataclass
class Schedule:
    rate: float
    warmup: float  # at least this many seconds of warm-up
    warmup_max: float  # and at most this many, waiting for `warm()`
    seconds: float  # measured load
    warm: Callable[[], bool]  # True once the service is warm (the drift monitor has checked)
    on_phase: Callable[[str, float], None]  # ("warmup" | "load" | "end", time.monotonic())


async def drive(
    url: str,
    bodies: list[bytes],
    applicants: list[str],
    schedule: Schedule,
    connections: int,
    timeout: float,
) -> tuple[list[Answer], float]:
    """Request i is due at t0 + i / rate (t0: the warm-up's start) and sent then, whatever
    came before. The measured load starts at the first due time after at least `warmup` s once
    `warm()` (or after `warmup_max` s) and lasts `seconds`. Returns the answers (due: s since
    the measured load's start) and that start (time.monotonic)."""
    import aiohttp

    loop = asyncio.get_running_loop()  # its clock is time.monotonic()
    answers: list[Answer] = []
    rate = schedule.rate
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    headers = {"Content-Type": "application/json", **AUTH_HEADERS}

    async def one(session: aiohttp.ClientSession, i: int, due: float, at: float) -> None:
        sent = loop.time()
        pick = i % len(bodies)
        status, error = 0, None
        try:
            async with session.post(url, data=bodies[pick], headers=headers) as response:
                status = response.status
                raw = await response.read()
            if not 200 <= status < 300:
                error = f"HTTP {status}"
            else:
                try:
                    answer = json.loads(raw)
                    if answer.get("applicant_id") != applicants[pick] or "decision" not in answer:
                        error = "bad 200 body"
                except ValueError:
                    error = "bad 200 body"
        except TimeoutError:
            error = f"timeout (>{timeout:g} s)"
        except aiohttp.ClientConnectorError:
            error = "connect error"
        except aiohttp.ServerDisconnectedError:
            error = "server disconnected"
        except (aiohttp.ClientError, OSError) as exc:
            error = type(exc).__name__
        done = loop.time()
        answers.append(
            Answer(
                index=i,
                due=due,
                lag_ms=(sent - at) * 1000,
                status=status,
                latency_ms=(done - at) * 1000,
                service_ms=(done - sent) * 1000,
                error=error,
            )
        )

    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        t0 = loop.time() + 0.2
        schedule.on_phase("warmup", t0)
        load_start = end = math.inf
        next_look = t0 + schedule.warmup
        tasks = set()
        i = 0
        while True:
            at = t0 + i / rate
            if at >= end:
                break
            if load_start == math.inf and at >= next_look:
                if at >= t0 + schedule.warmup_max or schedule.warm():
                    load_start, end = at, at + schedule.seconds
                    schedule.on_phase("load", load_start)
                    schedule.on_phase("end", end)
                else:
                    next_look = at + 1.0
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(session, i, at, at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        while tasks:
            await asyncio.gather(*list(tasks))
    for answer in answers:
        answer.due = answer.due - load_start
    return sorted(answers, key=lambda a: a.index), load_start


# --- the report ----------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan}
    array = np.asarray(values)
    p50, p95, p99 = np.percentile(array, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(array.max())}


def errors_by_kind(answers: list[Answer]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for a in answers:
        if a.error:
            kinds[a.error] = kinds.get(a.error, 0) + 1
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def per_minute(answers: list[Answer], seconds: float) -> list[dict[str, Any]]:
    rows = []
    for minute in range(math.ceil(seconds / 60)):
        lo, hi = minute * 60, min((minute + 1) * 60, seconds)
        these = [a for a in answers if lo <= a.due < hi]
        rows.append(
            {
                "minute": minute + 1,
                "from_s": lo,
                "to_s": hi,
                "requests": len(these),
                "rate": len(these) / (hi - lo) if hi > lo else math.nan,
                "errors": sum(1 for a in these if a.error),
                **percentiles([a.latency_ms for a in these]),
            }
        )
    return rows


def slope_mib_per_min(samples: list[Sample], group: str) -> float:
    points = [(s.t, s.groups.get(group, 0)) for s in samples if s.t >= 0]
    if len(points) < 3:
        return math.nan
    t = np.array([p[0] for p in points]) / 60
    y = np.array([p[1] for p in points]) / MIB
    return float(np.polyfit(t, y, 1)[0])


def cores_between(a: Sample, b: Sample) -> dict[str, float]:
    """Cores used between two samples: the Ray tree, this process, everything else."""
    wall = b.t - a.t
    if wall <= 0:
        return {"ray": math.nan, "load generator": math.nan, "other": math.nan}
    # A process born in between counts from zero; one that died in between is lost (small).
    ray = sum(cpu - a.cpu.get(pid, 0.0) for pid, cpu in b.cpu.items())
    own = b.own_cpu - a.own_cpu
    busy = b.busy - a.busy
    return {
        "ray": ray / wall,
        "load generator": own / wall,
        "other": max(busy - ray - own, 0) / wall,
    }


@dataclass
class Report:
    args: dict[str, Any]
    answers: list[Answer]
    samples: list[Sample]
    load_seconds: float
    warmup_seconds: float
    monitor_on: bool = True  # the deployment feeds the drift monitor
    monitor: dict[str, Any] | None = None
    top_other: list[tuple[str, float]] = field(default_factory=list)  # name, cores
    replica_states: str = ""

    def measured(self) -> list[Answer]:
        return [a for a in self.answers if a.due >= 0]

    def warm(self) -> list[Answer]:
        return [a for a in self.answers if a.due < 0]

    def start_end(self) -> tuple[Sample, Sample]:
        measured = [s for s in self.samples if s.t >= 0]
        return measured[0], measured[-1]

    def figures(self) -> dict[str, Any]:
        measured = self.measured()
        rate = self.args["rate"]
        sent = len(measured)
        good = [a for a in measured if not a.error]
        errors = errors_by_kind(measured)
        first, last = self.start_end()
        growth = {}
        for group in (*SERVE_GROUPS, SERVE_ALL, *RAY_GROUPS, RAY_ALL):
            a, b = first.groups.get(group, 0), last.groups.get(group, 0)
            growth[group] = {
                "start_mib": a / MIB,
                "end_mib": b / MIB,
                "growth": (b - a) / a if a else (math.inf if b else 0.0),
                "slope_mib_min": slope_mib_per_min(self.samples, group),
                "processes_start": first.counts.get(group, 0),
                "processes_end": last.counts.get(group, 0),
            }
        # The same processes at both ends (a replica the autoscaler added or removed in between
        # is not in it): growth of what lived throughout, the figure a leak shows up in.
        same = first.processes.keys() & last.processes.keys()
        lived = {}
        for name, groups in ((SERVE_ALL, SERVE_GROUPS), (RAY_ALL, None)):
            pids = [p for p in same if groups is None or first.processes[p]["group"] in groups]
            a = sum(first.processes[p]["rss"] for p in pids)
            b = sum(last.processes[p]["rss"] for p in pids)
            lived[name] = {
                "processes": len(pids),
                "start_mib": a / MIB,
                "end_mib": b / MIB,
                "growth": (b - a) / a if a else 0.0,
            }
        replicas = [s.counts.get("replicas", 0) for s in self.samples if s.t >= 0]
        serve_growth = growth[SERVE_ALL]["growth"]
        tree_growth = growth[RAY_ALL]["growth"]
        reasons = []
        if errors:
            reasons.append(f"{sum(errors.values())} errors")
        if not serve_growth < GROWTH_TARGET:
            reasons.append(f"Serve app RSS {serve_growth:+.1%}")
        if not tree_growth < GROWTH_TARGET:
            reasons.append(f"Ray tree RSS {tree_growth:+.1%}")
        cores = cores_between(first, last)
        loads = [s.loadavg[0] for s in self.samples if s.t >= 0]
        lags = [a.lag_ms for a in measured]
        return {
            "target_rate": rate,
            "sent": sent,
            "answered_ok": len(good),
            "achieved_rate": len(good) / self.load_seconds,
            "sent_rate": sent / self.load_seconds,
            "errors": errors,
            "error_count": sum(errors.values()),
            "latency": percentiles([a.latency_ms for a in measured]),
            "service": percentiles([a.service_ms for a in measured]),
            "send_lag": percentiles(lags),
            "warmup_latency": percentiles([a.latency_ms for a in self.warm()]),
            "warmup_errors": errors_by_kind(self.warm()),
            "per_minute": per_minute(measured, self.load_seconds),
            "rss": growth,
            "rss_same_processes": lived,
            "processes_changed": first.processes.keys() != last.processes.keys(),
            "replicas": (replicas[0], replicas[-1], min(replicas), max(replicas)),
            "warmup_s": self.warmup_seconds,
            "redis_mib": (first.redis_rss / MIB, last.redis_rss / MIB),
            "shm_mib": (first.shm_used / MIB, last.shm_used / MIB),
            "uss_mib": {
                g: ((first.uss or {}).get(g, 0) / MIB, (last.uss or {}).get(g, 0) / MIB)
                for g in (SERVE_ALL, RAY_ALL)
            },
            "cores": cores,
            "loadavg_1m": (min(loads), max(loads)) if loads else (math.nan, math.nan),
            "loadavg_end": last.loadavg,
            "checks": (first.checks, last.checks),
            "spool_files": (first.spool_files, last.spool_files),
            "predlog_parts": (first.predlog_parts, last.predlog_parts),
            "sample_seconds_max": max(s.seconds for s in self.samples),
            "verdict": "PASS" if not reasons else "FAIL",
            "verdict_reasons": reasons,
        }


def fmt_errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in errors.items()) or "none"


def print_text(report: Report, f: dict[str, Any]) -> None:
    args = report.args
    lat = f["latency"]
    print()
    print(
        f"soak: {args['rate']:g} req/s open loop for {report.load_seconds:g} s after a "
        f"{report.warmup_seconds:.0f} s warm-up; {args['connections']} connections max, timeout "
        f"{args['timeout']:g} s; {args['bodies']:,} bodies rotated"
    )
    print(
        f"requests sent {f['sent']:,} ({f['sent_rate']:.2f}/s), answered OK {f['answered_ok']:,}"
        f" = achieved {f['achieved_rate']:.2f} req/s; errors {f['error_count']}: "
        f"{fmt_errors(f['errors'])}"
    )
    print(
        f"latency (from due) p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f}, p99 {lat['p99']:.1f}, "
        f"max {lat['max']:.1f}; send lag p99 {f['send_lag']['p99']:.2f} ms, max "
        f"{f['send_lag']['max']:.1f} ms; warm-up p50 {f['warmup_latency']['p50']:.1f} ms, "
        f"errors {fmt_errors(f['warmup_errors'])}"
    )
    print()
    print("minute  requests  req/s  errors   p50 ms   p95 ms   p99 ms   max ms")
    for row in f["per_minute"]:
        print(
            f"{row['minute']:>6}  {row['requests']:>8}  {row['rate']:>5.2f}  {row['errors']:>6}"
            f"  {row['p50']:>7.1f}  {row['p95']:>7.1f}  {row['p99']:>7.1f}  {row['max']:>7.1f}"
        )
    print()
    print("RSS MiB                start      end   growth  trend MiB/min  processes")
    for group, g in f["rss"].items():
        if not g["start_mib"] and not g["end_mib"]:
            continue
        print(
            f"{group:<20} {g['start_mib']:>7.0f}  {g['end_mib']:>7.0f}  {g['growth']:>+6.1%}  "
            f"{g['slope_mib_min']:>+12.2f}  {g['processes_start']} -> {g['processes_end']}"
        )
    same = f["rss_same_processes"]
    if f["processes_changed"]:
        print(
            "processes changed during the load; the same processes at both ends: Serve app "
            f"{same[SERVE_ALL]['start_mib']:.0f} -> {same[SERVE_ALL]['end_mib']:.0f} MiB "
            f"({same[SERVE_ALL]['growth']:+.1%}), Ray tree {same[RAY_ALL]['start_mib']:.0f} -> "
            f"{same[RAY_ALL]['end_mib']:.0f} MiB ({same[RAY_ALL]['growth']:+.1%})"
        )
    r = f["replicas"]
    print(f"replicas: {r[0]} at the start, {r[1]} at the end, {r[2]}-{r[3]} during the load")
    print(
        f"(USS, private memory: Serve app {f['uss_mib'][SERVE_ALL][0]:.0f} -> "
        f"{f['uss_mib'][SERVE_ALL][1]:.0f} MiB, Ray tree {f['uss_mib'][RAY_ALL][0]:.0f} -> "
        f"{f['uss_mib'][RAY_ALL][1]:.0f} MiB; private Redis {f['redis_mib'][0]:.0f} -> "
        f"{f['redis_mib'][1]:.0f} MiB; /dev/shm {f['shm_mib'][0]:.0f} -> {f['shm_mib'][1]:.0f} MiB)"
    )
    print(
        f"drift monitor checks {f['checks'][0]} -> {f['checks'][1]}, spooled batches "
        f"{f['spool_files'][0]} -> {f['spool_files'][1]}; prediction-log parts "
        f"{f['predlog_parts'][0]} -> {f['predlog_parts'][1]}"
    )
    if report.monitor is not None:
        print(describe_monitor(report.monitor))
    if report.monitor_on and f["checks"][0] == 0:
        print(
            "WARNING: no drift check had finished when the measured load started: the monitor's "
            "first check (its Evidently and MLflow imports, ~300 MiB) falls inside the growth "
            "figures (--warmup-checks 0, or --warmup-max reached)."
        )
    print_process_changes(report)
    print()
    print_timeline(report)
    print()
    print_machine(report, f)
    print()
    print(verdict_line(f))


def print_process_changes(report: Report, top: int = 6) -> None:
    """The processes whose RSS changed most over the measured load, and those that came or went."""
    first, last = report.start_end()
    a, b = first.processes, last.processes
    changed = sorted(
        ((pid, b[pid]["rss"] - a[pid]["rss"]) for pid in a.keys() & b.keys()),
        key=lambda item: -abs(item[1]),
    )[:top]
    print("largest RSS changes over the load (per process):")
    for pid, delta in changed:
        print(
            f"  {delta / MIB:+7.1f} MiB  {a[pid]['rss'] / MIB:6.0f} -> {b[pid]['rss'] / MIB:6.0f}  "
            f"pid {pid} ({b[pid]['group']}) {b[pid]['title'][:70]}"
        )
    for what, pids, proc in (("new", b.keys() - a.keys(), b), ("gone", a.keys() - b.keys(), a)):
        for pid in sorted(pids):
            p = proc[pid]
            print(f"  {what}: pid {pid} ({p['group']}) {p['rss'] / MIB:.0f} MiB {p['title'][:70]}")


def print_timeline(report: Report) -> None:
    """Every sample: RSS per Serve process group and the whole tree, replicas, checks."""
    print("t s    ctrl  proxy  replicas  monitor  Serve  Ray tree  repl  checks  spool  load1")
    for s in report.samples:
        g = s.groups
        print(
            f"{s.t:>5.0f}  {g.get('controller', 0) / MIB:>4.0f}  {g.get('proxy', 0) / MIB:>5.0f}"
            f"  {g.get('replicas', 0) / MIB:>8.0f}  {g.get('drift monitor', 0) / MIB:>7.0f}"
            f"  {g[SERVE_ALL] / MIB:>5.0f}  {g[RAY_ALL] / MIB:>8.0f}"
            f"  {s.counts.get('replicas', 0):>4}  {s.checks:>6}  {s.spool_files:>5}"
            f"  {s.loadavg[0]:>5.2f}"
        )


def print_machine(report: Report, f: dict[str, Any]) -> None:
    c = f["cores"]
    print(
        f"machine: {os.cpu_count()} CPUs; during the measured load the Ray tree used "
        f"{c['ray']:.2f} cores, the load generator {c['load generator']:.2f}, other processes "
        f"{c['other']:.2f}; load average (1 min) {f['loadavg_1m'][0]:.2f}-"
        f"{f['loadavg_1m'][1]:.2f}"
    )
    measured = [s for s in report.samples if s.t >= 0]
    per_step = [cores_between(a, b)["other"] for a, b in itertools.pairwise(measured)]
    if per_step:
        print(
            f"  other processes per {report.args['sample_every']:g} s step: min "
            f"{min(per_step):.2f}, median {float(np.median(per_step)):.2f}, max "
            f"{max(per_step):.2f} cores"
        )
    if report.top_other:
        top = ", ".join(f"{name} {cores:.2f}" for name, cores in report.top_other)
        print(f"  busiest other processes alive throughout (cores): {top}")


def verdict_line(f: dict[str, Any]) -> str:
    serve, tree = f["rss"][SERVE_ALL]["growth"], f["rss"][RAY_ALL]["growth"]
    text = (
        f"{f['verdict']}: errors {f['error_count']} (target 0); RSS growth Serve app "
        f"{serve:+.1%}, Ray tree {tree:+.1%} (target < {GROWTH_TARGET:.0%} each)"
    )
    if f["verdict_reasons"]:
        text += f" -- {'; '.join(f['verdict_reasons'])}"
    return text


def print_markdown(report: Report, f: dict[str, Any]) -> None:
    lat, c = f["latency"], f["cores"]
    print()
    print("| figure | value |")
    print("|---|---|")
    rows = [
        (
            "target rate",
            f"{f['target_rate']:g} req/s, open loop, {report.load_seconds:g} s after "
            f"{report.warmup_seconds:.0f} s of warm-up",
        ),
        ("requests sent", f"{f['sent']:,} ({f['sent_rate']:.2f}/s)"),
        ("achieved rate (answered OK)", f"{f['achieved_rate']:.2f} req/s"),
        ("errors", f"{f['error_count']} ({fmt_errors(f['errors'])})"),
        (
            "latency p50 / p95 / p99 / max",
            f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f} ms",
        ),
        (
            "client send lag p99 / max",
            f"{f['send_lag']['p99']:.2f} / {f['send_lag']['max']:.1f} ms",
        ),
    ]
    for group in (SERVE_ALL, RAY_ALL):
        g = f["rss"][group]
        rows.append(
            (
                f"RSS {group}: start / end",
                f"{g['start_mib']:,.0f} / {g['end_mib']:,.0f} MiB (**{g['growth']:+.1%}**, "
                f"trend {g['slope_mib_min']:+.1f} MiB/min)",
            )
        )
    if f["processes_changed"]:
        same = f["rss_same_processes"]
        rows.append(
            (
                "RSS, processes alive at both ends: Serve app / Ray tree",
                f"{same[SERVE_ALL]['growth']:+.1%} / {same[RAY_ALL]['growth']:+.1%}",
            )
        )
    r = f["replicas"]
    rows += [
        ("replicas (start / end / min-max)", f"{r[0]} / {r[1]} / {r[2]}-{r[3]}"),
        ("drift checks during the load", f"{f['checks'][1] - f['checks'][0]}"),
        (
            "CPU cores: Ray tree / load generator / other",
            f"{c['ray']:.2f} / {c['load generator']:.2f} / {c['other']:.2f}",
        ),
        ("load average (1 min), min-max", f"{f['loadavg_1m'][0]:.2f}-{f['loadavg_1m'][1]:.2f}"),
        ("verdict", verdict_line(f)),
    ]
    for name, value in rows:
        print(f"| {name} | {value} |")
    print()
    print("| minute | requests | req/s | errors | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in f["per_minute"]:
        print(
            f"| {row['minute']} | {row['requests']:,} | {row['rate']:.2f} | {row['errors']} "
            f"| {row['p50']:.1f} | {row['p95']:.1f} | {row['p99']:.1f} | {row['max']:.1f} |"
        )
    print(
        f"| all | {f['sent']:,} | {f['sent_rate']:.2f} | {f['error_count']} | {lat['p50']:.1f} "
        f"| {lat['p95']:.1f} | {lat['p99']:.1f} | {lat['max']:.1f} |"
    )
    print()
    print("| process group | processes | RSS start MiB | RSS end MiB | growth | trend MiB/min |")
    print("|---|---:|---:|---:|---:|---:|")
    for group, g in f["rss"].items():
        if not g["start_mib"] and not g["end_mib"]:
            continue
        name = f"**{group}**" if group in (SERVE_ALL, RAY_ALL) else group
        procs = str(g["processes_start"])
        if g["processes_end"] != g["processes_start"]:
            procs += f" -> {g['processes_end']}"
        print(
            f"| {name} | {procs} | {g['start_mib']:,.0f} | {g['end_mib']:,.0f} "
            f"| {g['growth']:+.1%} | {g['slope_mib_min']:+.2f} |"
        )


def write_json(path: Path, report: Report, f: dict[str, Any]) -> None:
    document = {
        "settings": report.args,
        "figures": f,
        "monitor": report.monitor,
        "top_other": report.top_other,
        "samples": [
            s.__dict__ | {"cpu": {str(k): v for k, v in s.cpu.items()}} for s in report.samples
        ],
        "answers": [a.__dict__ for a in report.answers],
    }
    path.write_text(json.dumps(document, default=str))


# --- main ----------------------------------------------------------------------------------


# Ray 2.60's raylet aborts when its dashboard agent has not written its port file within 15 s
# (a fixed wait, NodeManager::WaitForDashboardAgentPorts), and ray.init then fails with this.
# On a machine busy with other jobs the agent's imports can take longer: start again.
RAY_START_FAILURE = "timed out during startup"


def retry_ray_start(what: str, attempts: int, quiet_wait: float, start: Any) -> Any:
    """`start(attempt)`, again (after waiting for a quieter machine) when Ray did not start."""
    import ray

    for attempt in range(1, attempts + 1):
        try:
            return start(attempt)
        except Exception as exc:
            if RAY_START_FAILURE not in str(exc) or attempt == attempts:
                raise
            ray.shutdown()  # a no-op unless this process's own ray.init half started
            print(
                f"  {what}: Ray did not start (its raylet gave up on its agents after 15 s: "
                f"load average {os.getloadavg()[0]:.1f}); attempt {attempt + 1} of {attempts}"
            )
            wait_quiet(quiet_wait)
    raise AssertionError("unreachable")


def deployment_options(path: Path) -> dict[str, Any]:
    """serve_config.yaml's `deployments[0]` as deployed: autoscaling_config kept (serving.py's
    `serve_config_options` replaces it by num_replicas 1)."""
    import yaml

    document = yaml.safe_load(path.read_text())
    return dict(document["applications"][0]["deployments"][0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20, help="requests per second (open loop)")
    parser.add_argument("--seconds", type=float, default=300, help="measured load, seconds")
    parser.add_argument(
        "--warmup", type=float, default=60, help="warm-up at the same rate, at least this many s"
    )
    parser.add_argument(
        "--warmup-checks",
        type=int,
        default=1,
        help="...and until the drift monitor has finished this many checks (its first one "
        "imports Evidently and MLflow: ~300 MiB that are not growth); 0: --warmup alone",
    )
    parser.add_argument(
        "--warmup-max", type=float, default=300, help="longest warm-up waiting for the checks, s"
    )
    parser.add_argument(
        "--connections", type=int, default=64, help="most keep-alive connections at once"
    )
    parser.add_argument("--timeout", type=float, default=10, help="seconds before a request fails")
    parser.add_argument("--sample-every", type=float, default=10, help="seconds between samples")
    parser.add_argument("--applicants", type=int, default=10_000, help="synthetic applicants")
    parser.add_argument("--bodies", type=int, default=1_000, help="request bodies to rotate")
    parser.add_argument("--rounds", type=int, default=300, help="XGBoost boosting rounds")
    parser.add_argument("--seed", type=int, default=7, help="seed for picking applicants")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument(
        "--serve-config",
        type=Path,
        default=DEFAULT_SERVE_CONFIG,
        help="serve config whose deployments[0] settings (autoscaling included) are deployed",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        help="before the setup and again before the warm-up, wait up to this many seconds for "
        "the machine to be idle",
    )
    parser.add_argument(
        "--start-timeout", type=float, default=180, help="seconds for the service to come up"
    )
    parser.add_argument(
        "--start-attempts",
        type=int,
        default=3,
        help="tries to start each local Ray (Ray 2.60 gives up after 15 s on a busy machine)",
    )
    parser.add_argument("--markdown", action="store_true", help="also print markdown tables")
    parser.add_argument("--json", type=Path, help="write every request and sample to this file")
    parser.add_argument(
        "--keep-work-dir", action="store_true", help="keep data, model and logs after the run"
    )
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.warmup < 0 or args.sample_every <= 0:
        parser.error("--rate, --seconds and --sample-every must be > 0, --warmup >= 0")

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet()
    script_started = time.perf_counter()
    work_root = Path(__file__).resolve().parents[1] / "var" / "bench"
    work_root.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="soak_", dir=work_root))
    (work_dir / "logs").mkdir()
    redis = None
    running: Running | None = None
    sampler: Sampler | None = None
    try:
        import aiohttp
        import ray

        from app.localservices import start_redis

        print(
            f"soak: ray {ray.__version__}, aiohttp {aiohttp.__version__}; {os.cpu_count()} CPUs, "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; work dir {work_dir}"
        )
        # Ray's start fails on an overloaded machine (the raylet waits 15 s for its agents).
        wait_quiet(args.wait_quiet)
        redis = start_redis()  # private, non-persistent, on a free port (never 6379)
        redis_port = redis.port

        def build(attempt: int) -> Any:
            folder = work_dir if attempt == 1 else work_dir / f"attempt{attempt}"
            (folder / "logs").mkdir(parents=True, exist_ok=True)
            return build_workload(args, folder, redis_port)

        workload = retry_ray_start("setup", args.start_attempts, args.wait_quiet, build)
        quiet()
        ours_ready(workload)
        options = deployment_options(args.serve_config)
        started = time.perf_counter()
        # serving.py's start_ours with the config's own settings (autoscaling, monitor on).
        running = retry_ray_start(
            "ours",
            args.start_attempts,
            args.wait_quiet,
            lambda _: start_ours(
                workload, args.start_timeout, args.cpus, parse_variant("default"), options
            ),
        )
        replica_states = ""
        for line in running.log_tail(400).splitlines():
            if line.startswith("SERVE_READY "):
                replica_states = line.removeprefix("SERVE_READY ")
        print(
            f"ours up at {running.url} in {time.perf_counter() - started:.1f} s (driver pid "
            f"{running.process.pid}), replicas {replica_states}; autoscaling "
            f"{options.get('autoscaling_config')}"
        )
        rows = workload.rows
        bodies = [json.dumps(ours_body(r)).encode() for r in rows]
        applicants = [r["applicant_id"] for r in rows]

        wait_quiet(args.wait_quiet)
        sampler = Sampler(
            running, redis.process.pid, workload.settings.prediction_log_dir, args.sample_every
        )
        monitor_on = options.get("user_config", {}).get("drift_monitor", True) is not False
        warmup_checks = args.warmup_checks if monitor_on else 0
        results_dir = running.monitor_dir / "results" if running.monitor_dir else None

        def warm() -> bool:
            return dir_stats(results_dir, "*.json")[0] >= warmup_checks

        def on_phase(phase: str, at: float) -> None:
            assert sampler is not None
            if phase == "warmup":
                sampler.start(at)
            else:
                sampler.mark(phase, at)
            if phase == "load":
                print(
                    f"  measured load starts after {at - warm_start[0]:.0f} s of warm-up "
                    f"(drift checks done: {dir_stats(results_dir, '*.json')[0]})"
                )
            elif phase == "warmup":
                warm_start[0] = at

        warm_start = [0.0]
        print(
            f"load: {args.rate:g} req/s; warm-up at least {args.warmup:g} s and until the drift "
            f"monitor has finished {warmup_checks} check(s) (at most {args.warmup_max:g} s), "
            f"then {args.seconds:g} s measured; samples every {args.sample_every:g} s"
        )
        exclude = {p.pid for p in running.tree()} | {os.getpid(), redis.process.pid}
        others_at_start = other_processes_cpu(exclude)
        others_started = time.monotonic()
        schedule = Schedule(
            args.rate,
            args.warmup,
            max(args.warmup, args.warmup_max),
            args.seconds,
            warm,
            on_phase,
        )
        answers, load_start = asyncio.run(
            drive(running.url, bodies, applicants, schedule, args.connections, args.timeout)
        )
        sampler.join(args.sample_every + 60)
        others_wall = time.monotonic() - others_started
        others_at_end = other_processes_cpu(exclude | {p.pid for p in running.tree()})
        top_other = sorted(
            (
                (f"{name} ({pid})", (cpu - others_at_start[pid][1]) / others_wall)
                for pid, (name, cpu) in others_at_end.items()
                if pid in others_at_start and others_at_start[pid][0] == name
            ),
            key=lambda item: -item[1],
        )[:5]
        report = Report(
            args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            answers=answers,
            samples=sampler.timed(load_start),
            load_seconds=args.seconds,
            warmup_seconds=load_start - warm_start[0],
            monitor_on=monitor_on,
            top_other=[(n, c) for n, c in top_other if c >= 0.01],
            replica_states=replica_states,
        )
        running.stop()
        stopped, running = running, None
        report.monitor = monitor_summary(stopped)
        figures = report.figures()
        print_text(report, figures)
        if args.markdown:
            print_markdown(report, figures)
        if args.json is not None:
            write_json(args.json, report, figures)
            print(f"requests and samples written to {args.json}")
        print(f"total run time {math.ceil(time.perf_counter() - script_started)} s")
        return 0 if figures["verdict"] == "PASS" else 1
    finally:
        if sampler is not None:
            sampler.stop()
        if running is not None:
            running.stop()
        if redis is not None:
            redis.stop()
        if args.keep_work_dir:
            print(f"kept {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
