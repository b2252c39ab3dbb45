"""The serving benchmark (`python -m benchmarks.serving`): one service at a time on one
machine, each checked against the booster's answers, then measured with wrk."""

from __future__ import annotations

import argparse
import functools
import math
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness.cli import WORKLOAD, parser
from benchmarks.harness.machine import MIB, wait_quiet
from benchmarks.harness.procs import ROOT, ServiceProcess, quiet, work_dir
from benchmarks.harness.tables import write_json
from benchmarks.harness.variants import KNOWN, MONITOR_LEVER, SHIPPED, parse_variants
from benchmarks.serving.transports import EXTRA, NAMES, ours_label, parse_transports

SERVICES = ("ours", "mlserver", "peer", "floor", "feast")
ONLY = {
    "all": SERVICES,
    "required": ("ours", "mlserver", "peer", "floor"),  # the rows (a)-(d)
    "peers": ("mlserver", "peer", "feast"),
    "micro": (),  # the in-process micro-benchmark alone
    **{name: (name,) for name in SERVICES},
}
QUICK_SECONDS, QUICK_WARMUP, QUICK_MICRO_SECONDS = 15, 3, 1.0
VENVS = ROOT / "var" / "bench"
OPTIONS = [
    ("--duration", int, 60, "seconds per wrk run"),
    ("--warmup", int, 5, "untimed wrk seconds first"),
    (
        "--quick",
        bool,
        False,
        "checks: 15 s per wrk run (ours too), 3 s warm-up, 1 s per micro figure",
    ),
    ("--connections", int, 16, "wrk connections (load)"),
    ("--threads", int, 2, "wrk threads (load)"),
    ("--latency", bool, False, "print wrk's latency distribution too"),
    ("--mlserver-venv", Path, VENVS / "mlserver-venv", "MLServer's virtualenv"),
    ("--peer-venv", Path, VENVS / "mlserver-feast-venv", "the seed stack's virtualenv"),
    (
        "--mlserver-omp-threads",
        int,
        1,
        "OMP_NUM_THREADS of MLServer, the seed stack and the floor (0: unset)",
    ),
    ("--ours-cpus", int, 2, "CPUs of the local Ray that runs ours"),
    (
        "--ours-variants",
        parse_variants,
        parse_variants(f"{SHIPPED},{MONITOR_LEVER}"),
        f"comma-separated Serve levers for ours, + to combine them. Known: {KNOWN}",
    ),
    ("--ours-duration", int, 0, "seconds per wrk run for the ours variants (0: --duration)"),
    (
        "--transports",
        parse_transports,
        ",".join(EXTRA),
        "besides ours' /v1 and MLServer's V2 REST: v2 (ours' V2 REST) and grpc (ours' and "
        "MLServer's gRPC), comma-separated, or none; ours' on the first of --ours-variants",
    ),
    ("--grpc-channels", int, 4, "gRPC channels (connections) grpcload spreads its workers over"),
    ("--haproxy-nbthread", int, 1, "RAY_SERVE_HAPROXY_NBTHREAD for the haproxy lever"),
    ("--feast-max-requests", int, 0, "feast serve --max-requests (0: never recycle its worker)"),
    ("--micro-seconds", float, 5.0, "seconds of calls per micro-benchmark figure (0: none)"),
    ("--json", Path, None, "write the issue's summary (its fixed keys) to this JSON file"),
    ("--json-details", Path, None, "write every figure of every row to this JSON file"),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    command = parser(__doc__, WORKLOAD, OPTIONS)
    command.add_argument("--only", choices=sorted(ONLY), default="all", help="services to run")
    args = command.parse_args(argv)
    if args.quick:
        args.duration = QUICK_SECONDS
        args.ours_duration = min(args.ours_duration or QUICK_SECONDS, QUICK_SECONDS)
        args.warmup = min(args.warmup, QUICK_WARMUP)
        args.micro_seconds = min(args.micro_seconds, QUICK_MICRO_SECONDS)
    return args


def describe(rows: list[tuple[str, str, str]], micro: bool, folder: Path, args: Any) -> None:
    import feast
    import grpc
    import ray
    import xgboost

    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    names = ", ".join(label for _, _, label in rows) or "none"
    extra = ", ".join(NAMES[t] for t in args.transports) or "none"
    print(
        f"services: {names}{' + the in-process micro-benchmark' if micro else ''}; "
        f"transports beyond ours' /v1 and MLServer's V2 REST: {extra}; ray "
        f"{ray.__version__}, feast {feast.__version__}, xgboost {xgboost.__version__}, "
        f"grpcio {grpc.__version__}, {wrk.split(' [')[0].strip()}; work dir {folder}"
    )


def starters(workload: Any, args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Callable]:
    from benchmarks.harness.ours import grpc_options, start_ours
    from benchmarks.serving import peers

    def ours(variant: Any) -> ServiceProcess:
        # Serve's gRPC ingress as serve_config.yaml has it (on a free port), for the first.
        first = variant == args.ours_variants[0] and "grpc" in args.transports
        grpc = grpc_options(args.serve_config) if first else None
        cpus, timeout = args.ours_cpus, args.start_timeout
        return start_ours(workload, variant, base, cpus, timeout, args.haproxy_nbthread, grpc)

    return {
        "ours": ours,
        "mlserver": lambda _: peers.start_mlserver(workload, args),
        "peer": lambda _: peers.start_peer(workload, args),
        "floor": lambda _: peers.start_floor(workload, args, base.get("user_config", {})),
        "feast": lambda _: peers.start_feast(workload, args),
    }


def run_one(
    service: str,
    key: str,
    label: str,
    start: Callable[[], ServiceProcess],
    workload: Any,
    args: Any,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Start one service (its first row named `label`), measure each of its transports (a
    row each), stop it: (results, failures) by row key."""
    from benchmarks.harness.ours import describe_monitor, monitor_summary
    from benchmarks.serving.transports import targets

    started = time.perf_counter()
    running = start()
    seconds, pid = time.perf_counter() - started, running.process.pid
    print(f"{label}: up at {running.url} in {seconds:.1f} s (pid {pid}), answers checked")
    results, failures = {}, {}
    try:
        for target in targets(service, key, label, running, workload, args):
            try:
                results[target.key] = run_target(service, target, running, args)
            except Exception as exc:  # a transport that failed does not stop the others
                failures[target.key] = f"{type(exc).__name__}: {exc}"
                print(f"{target.label}: FAILED, {failures[target.key]}")
    finally:
        running.stop()
    if service == "ours" and key in results:
        results[key].monitor = monitor_summary(running)
        print(f"  {describe_monitor(results[key].monitor)}")
    return results, failures


def run_target(service: str, target: Any, running: ServiceProcess, args: Any) -> Any:
    """One row: its answers checked (the first transport's were, at start), then measured."""
    from benchmarks.serving.measure import measure

    if target.check is not None:
        target.check()
        print(f"{target.label}: at {target.address}, answers checked")
    wait_quiet(args.wait_quiet)
    duration = (args.ours_duration or args.duration) if service == "ours" else args.duration
    m = measure(running, target, args, duration)
    lo, sq = m.load.result, m.sequential.result
    print(
        f"  {target.label}: load {lo['rps']:,.0f} req/s, p50 {lo['p50_ms']:.2f} ms, p99 "
        f"{lo['p99_ms']:.2f} ms; sequential p50 {sq['p50_ms']:.2f} ms, p99 {sq['p99_ms']:.2f} "
        f"ms; errors {m.errors}; RSS {m.rss_peak[0] / MIB:,.0f} MiB"
    )
    return m


def run_micro(workload: Any, base: dict[str, Any], args: Any, failures: dict) -> dict | None:
    from benchmarks.serving.micro import BATCH, micro_benchmark

    wait_quiet(args.wait_quiet)
    started = time.perf_counter()
    try:
        micro = micro_benchmark(workload, base, args.micro_seconds)
    except Exception as exc:
        failures["micro"] = f"{type(exc).__name__}: {exc}"
        print(f"micro-benchmark: FAILED, {failures['micro']}")
        return None
    print(
        f"micro-benchmark ({time.perf_counter() - started:.1f} s): pure path "
        f"{micro['decide_us_single']:,.0f} µs for one decision, "
        f"{micro['decide_us_per_row_batch16']:,.1f} µs per row in a batch of {BATCH}; checked"
    )
    return micro


def run_all(args: Any, rows: list, variants: list, folder: Path, failures: dict) -> tuple:
    """The workload, the micro-benchmark, then each service in turn: (results, micro)."""
    from app.localservices import start_redis
    from benchmarks.harness.ours import register_champion, serve_config_options
    from benchmarks.harness.workload import build_workload

    base, results, micro = serve_config_options(args.serve_config), {}, None
    redis = start_redis()  # private, non-persistent, on a free port (never 6379)
    try:
        workload = build_workload(args, folder, redis.port)
        args.auth = workload.auth
        if args.micro_seconds > 0 and (
            args.only == "micro" or {"ours", "floor"} & set(ONLY[args.only])
        ):
            micro = run_micro(workload, base, args, failures)
        if variants or "floor" in ONLY[args.only]:
            register_champion(workload)  # ours and the floor load it
        start, variant_of = starters(workload, args, base), {v.key: v for v in variants}
        for key, service, label in rows:
            try:
                launch = functools.partial(start[service], variant_of.get(key))
                measured, failed = run_one(service, key, label, launch, workload, args)
                results |= measured
                failures |= failed
            except Exception as exc:  # a row that failed does not stop the others
                failures[key] = f"{type(exc).__name__}: {exc}"
                print(f"{label}: FAILED, {failures[key]}")
    finally:
        redis.stop()
    return results, micro


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    from benchmarks.serving import report
    from benchmarks.serving.micro import describe_micro
    from benchmarks.serving.peers import prepare_venvs

    services, started, failures = ONLY[args.only], time.perf_counter(), {}
    variants = args.ours_variants if "ours" in services else []
    rows = [(v.key, "ours", ours_label(v)) for v in variants]
    rows += [(s, s, report.LABELS[s]) for s in services if s != "ours"]
    with work_dir("serving_", args.keep_work_dir, ROOT / "var" / "bench") as folder:
        describe(rows, args.micro_seconds > 0, folder, args)
        prepare_venvs(services, args)
        results, micro = run_all(args, rows, variants, folder, failures)
    report.print_report(results, failures, variants, args)
    if micro is not None:
        print("\n" + describe_micro(micro))
    summary = report.summary_document(results, micro)
    report.print_targets(summary, results)
    if args.json is not None:
        write_json(args.json, summary)
        print(f"summary written to {args.json}")
    if args.json_details is not None:
        details = report.details_document(results, failures, variants, args)
        write_json(args.json_details, details | {"micro": micro, "summary": summary})
        print(f"details written to {args.json_details}")
    print(f"total run time {math.ceil(time.perf_counter() - started)} s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
