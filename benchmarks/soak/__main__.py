"""The soak (`python -m benchmarks.soak`): ours deployed as serve_config.yaml ships it, a
warm-up until the drift monitor has checked, then a steady open-loop rate; exit 0 on PASS."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.harness.cli import WORKLOAD, parser
from benchmarks.harness.machine import load, wait_quiet
from benchmarks.harness.procs import ROOT, ServiceProcess, quiet, retry_ray_start, work_dir
from benchmarks.harness.tables import settings_of, write_json

OPTIONS = [
    ("--rate", float, 20, "requests per second (open loop)"),
    ("--seconds", float, 300, "measured load, seconds"),
    ("--warmup", float, 60, "warm-up at the same rate, at least this many s"),
    ("--warmup-checks", int, 1, "...and until the drift monitor finished this many checks"),
    ("--warmup-max", float, 300, "longest warm-up waiting for the checks, s"),
    ("--connections", int, 64, "most keep-alive connections at once"),
    ("--timeout", float, 10, "seconds before a request fails"),
    ("--sample-every", float, 10, "seconds between samples"),
    ("--cpus", int, 2, "CPUs of the local Ray"),
    (
        "--start-attempts",
        int,
        3,
        "tries to start each local Ray (it gives up after 15 s when busy)",
    ),
    ("--markdown", bool, False, "also print Markdown tables"),
    ("--json", Path, None, "write every request and sample to this file"),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    command = parser(__doc__, WORKLOAD, OPTIONS)
    args = command.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.warmup < 0 or args.sample_every <= 0:
        command.error("--rate, --seconds and --sample-every must be > 0, --warmup >= 0")
    return args


def deploy(args: argparse.Namespace, folder: Path, redis_port: int) -> tuple[Any, Any, dict]:
    """The workload, then ours with the config's deployment as deployed (autoscaling, monitor)."""
    from benchmarks.harness.ours import register_champion, serve_config_options, start_ours
    from benchmarks.harness.variants import SHIPPED, parse_variant
    from benchmarks.harness.workload import build_workload

    def build(attempt: int) -> Any:
        attempt_dir = folder if attempt == 1 else folder / f"attempt{attempt}"
        (attempt_dir / "logs").mkdir(parents=True, exist_ok=True)
        return build_workload(args, attempt_dir, redis_port)

    def start(_attempt: int) -> ServiceProcess:
        variant = parse_variant(SHIPPED)
        return start_ours(workload, variant, options, args.cpus, args.start_timeout)

    workload = retry_ray_start("setup", args.start_attempts, args.wait_quiet, build)
    quiet()
    register_champion(workload)
    options, started = (
        serve_config_options(args.serve_config, as_deployed=True),
        time.perf_counter(),
    )
    ours = retry_ray_start("ours", args.start_attempts, args.wait_quiet, start)
    print(
        f"ours up at {ours.url} in {time.perf_counter() - started:.1f} s (driver pid "
        f"{ours.process.pid}), replicas {(ours.log_lines('SERVE_READY ') or [''])[-1]}; "
        f"autoscaling {options.get('autoscaling_config')}"
    )
    return workload, ours, options


def busiest_others(before: dict, after: dict, wall: float) -> list[tuple[str, float]]:
    """The 5 other processes alive throughout that used the most cores (at least 0.01)."""
    used = [
        (f"{name} ({pid})", (cpu - before[pid][1]) / wall)
        for pid, (name, cpu) in after.items()
        if pid in before and before[pid][0] == name
    ]
    return [(n, c) for n, c in sorted(used, key=lambda item: -item[1])[:5] if c >= 0.01]


def schedule_for(args: argparse.Namespace, ours: ServiceProcess, sampler: Any, checks: int) -> Any:
    """The load's schedule: warm until the drift monitor finished `checks` checks; the sampler
    starts with the warm-up and marks the measured load's start and end."""
    from benchmarks.soak.load import Schedule
    from benchmarks.soak.sampler import dir_stats

    results = ours.monitor_dir / "results" if ours.monitor_dir else None

    def on_phase(phase: str, at: float) -> None:
        if phase == "warmup":
            sampler.start(at)
            return
        sampler.mark(phase, at)
        if phase == "load":
            done = dir_stats(results, "*.json")[0]
            print(f"  measured load starts after {at - schedule.started:.0f} s (checks: {done})")

    print(
        f"load: {args.rate:g} req/s; warm-up at least {args.warmup:g} s and until the drift "
        f"monitor has finished {checks} check(s) (at most {args.warmup_max:g} s), then "
        f"{args.seconds:g} s measured; samples every {args.sample_every:g} s"
    )
    warmup = (args.warmup, max(args.warmup, args.warmup_max))
    warm = lambda: dir_stats(results, "*.json")[0] >= checks  # noqa: E731
    schedule = Schedule(args.rate, *warmup, args.seconds, warm, on_phase)
    return schedule


def soak(
    args: argparse.Namespace, workload: Any, ours: ServiceProcess, monitor_on: bool, redis_pid: int
) -> Any:
    """Warm-up and measured load with the sampler running: the report."""
    from benchmarks.harness.workload import ours_body
    from benchmarks.soak.load import drive
    from benchmarks.soak.report import Report
    from benchmarks.soak.sampler import Sampler, other_processes_cpu

    sampler = Sampler(ours, redis_pid, workload.settings.prediction_log_dir, args.sample_every)
    schedule = schedule_for(args, ours, sampler, args.warmup_checks if monitor_on else 0)
    exclude = {p.pid for p in ours.tree()} | {os.getpid(), redis_pid}
    others, others_started = other_processes_cpu(exclude), time.monotonic()
    bodies = [json.dumps(ours_body(r)).encode() for r in workload.rows]
    applicants = [r["applicant_id"] for r in workload.rows]
    try:
        answers, load_start = asyncio.run(drive(ours.url, bodies, applicants, schedule, args))
        sampler.join(args.sample_every + 60)
    finally:
        sampler.stop()
    after = other_processes_cpu(exclude | {p.pid for p in ours.tree()})
    top = busiest_others(others, after, time.monotonic() - others_started)
    samples, warmup = sampler.timed(load_start), load_start - schedule.started
    return Report(settings_of(args), answers, samples, args.seconds, warmup, monitor_on, None, top)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet()
    started = time.perf_counter()
    with work_dir("soak_", args.keep_work_dir, ROOT / "var" / "bench") as folder:
        import aiohttp
        import ray

        from app.localservices import start_redis
        from benchmarks.harness.ours import monitor_summary

        versions = f"ray {ray.__version__}, aiohttp {aiohttp.__version__}"
        print(f"soak: {versions}; {os.cpu_count()} CPUs, load average {load()}; work dir {folder}")
        wait_quiet(args.wait_quiet)  # Ray's start fails on an overloaded machine
        redis, ours = start_redis(), None
        try:
            workload, ours, options = deploy(args, folder, redis.port)
            args.auth = workload.auth
            monitor_on = options.get("user_config", {}).get("drift_monitor", True) is not False
            wait_quiet(args.wait_quiet)
            report = soak(args, workload, ours, monitor_on, redis.process.pid)
            ours.stop()
            report.monitor = monitor_summary(ours)
        finally:
            if ours is not None:
                ours.stop()
            redis.stop()
    return finish(report, args, started)


def finish(report: Any, args: argparse.Namespace, started: float) -> int:
    from benchmarks.soak.report import json_document, print_report

    figures = report.figures()
    print_report(report, figures, args.markdown)
    if args.json is not None:
        write_json(args.json, json_document(report, figures), indent=None)
        print(f"requests and samples written to {args.json}")
    print(f"total run time {math.ceil(time.perf_counter() - started)} s")
    return 0 if figures["verdict"] == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
