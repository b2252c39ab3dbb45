"""The loop at a lender's scale: every stage of the main job timed at each size on one local
Ray, beside what a user would otherwise run (Feast's materialize and offline store, plain
XGBoost, a pandas scoring loop, plain Evidently), with peak memory and growth exponents.

Stages run in this process (the driver), as `jobs.pipeline` runs them; the data lives in a
temporary directory (about 3 GB at 1,000,000 applicants) deleted at the end."""

from __future__ import annotations

import math
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness.cli import int_list, parser
from benchmarks.harness.machine import load
from benchmarks.harness.procs import local_ray, quiet, work_dir
from benchmarks.harness.tables import settings_of, table, write_json
from benchmarks.scale import stages
from benchmarks.scale.growth import HEADER, Measured, rows_of
from benchmarks.scale.plan import STAGES, Stage, prepare, summary

OPTIONS = [
    ("--rows", int_list, "10000,100000,1000000", "sizes, comma-separated"),
    ("--stages", str, "", "only these stages, comma-separated (default: all)"),
    ("--peer-max-rows", int, 1_000_000, "run the peers only up to this size"),
    (
        "--peer-max-rows-for",
        str,
        "",
        "per-stage limits for the peers, e.g. batch-scoring=100000,train=100000",
    ),
    ("--no-peers", bool, False, "ours only"),
    ("--cpus", int, 2, "CPUs of the local Ray"),
    ("--work-under", Path, None, "parent of the temporary data directory (default: /tmp)"),
    ("--keep-work-dir", bool, False, "keep the data after the run"),
    ("--markdown", bool, False, "also print the table as Markdown"),
    ("--json", Path, None, "also write every measurement to this JSON file"),
]


def timed(
    stage: str, size: stages.Size, work: Callable, peer: str, skip: set[int]
) -> Measured | None:
    """One stage measured, its line printed; a failure is printed and the run goes on (an
    hour's figures are not lost to one stage)."""
    from benchmarks.scale.sampler import measure

    try:
        with stages.silenced():
            result, seconds, peak = measure(lambda: work(size), skip)
    except Exception as exc:
        print(f"  {stage:<30} {peer or 'ours'} FAILED: {type(exc).__name__}: {exc}", flush=True)
        return None
    rows, detail = result[0], result[1]
    extra = {"snapshot_seconds": result[2]} if len(result) > 2 else {}
    m = Measured(stage, rows, seconds, peak.driver, peak.ray, detail, peer, extra)
    who = f"{peer:<26}" if peer else f"{'ours':<26}"
    print(
        f"  {stage:<30} {who} {rows:>10,} rows {seconds:>8.2f} s  driver "
        f"{peak.driver / 2**20:>6,.0f} MiB  Ray {m.ray_peak / 2**20:>6,.0f} MiB  {detail}",
        flush=True,
    )
    return m


def run_size(
    rows: int, base: Path, redis: Any, wanted: list[Stage], args: Any
) -> tuple[list[Measured], list[Measured]]:
    size = prepare(rows, base / f"n{rows}", redis.port)
    print(f"\n{rows:,} applicants (load average {load()})", flush=True)
    ours, theirs = [], []
    skip = {redis.process.pid}
    for stage in wanted:
        if stage.prep is not None:
            stage.prep(size)
        if (m := timed(stage.name, size, stage.ours, "", skip)) is not None:
            ours.append(m)
        limit = peer_limits(args).get(stage.name, args.peer_max_rows)
        with_peer = stage.peer is not None and not args.no_peers and rows <= limit
        if with_peer and (m := timed(stage.name, size, stage.peer, stage.peer_name, skip)):
            theirs.append(m)
        if stage.done is not None:
            stage.done(size)
    import redis as redis_py

    redis_py.Redis(port=redis.port, socket_timeout=30).flushall()
    if not args.keep_work_dir:
        shutil.rmtree(size.work, ignore_errors=True)
    return ours, theirs


def peer_limits(args: Any) -> dict[str, int]:
    """`--peer-max-rows-for` as {stage: rows}."""
    limits = {}
    for part in filter(None, args.peer_max_rows_for.split(",")):
        name, _, rows = part.partition("=")
        limits[name.strip()] = int(rows.replace("_", ""))
    return limits


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, OPTIONS).parse_args(argv)
    sizes = args.rows if isinstance(args.rows, list) else int_list(args.rows)
    names = [s for s in args.stages.split(",") if s]
    unknown = [n for n in names if n not in {s.name for s in STAGES}]
    if unknown:
        known = ", ".join(s.name for s in STAGES)
        raise SystemExit(f"unknown stage(s) {', '.join(unknown)}; stages: {known}")
    wanted = [s for s in STAGES if not names or s.name in names]
    quiet()
    # Feast's "experimental" and MLflow's deprecation warnings, once per call, would bury the
    # table.
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    ours: list[Measured] = []
    theirs: list[Measured] = []
    from app.localservices import start_redis

    with work_dir("bench_scale_", args.keep_work_dir, args.work_under) as base:
        redis = start_redis()
        try:
            with local_ray(args.cpus):
                for rows in sorted(sizes):
                    done = run_size(rows, base, redis, wanted, args)
                    ours += done[0]
                    theirs += done[1]
        finally:
            redis.stop()
    print("\n" + table(HEADER, rows_of(ours, theirs), False))
    if args.markdown:
        print("\n" + table(HEADER, rows_of(ours, theirs), True))
    print("\n" + summary(ours, theirs, sorted(sizes)))
    if args.json:
        document = {"settings": settings_of(args), "ours": ours, "peers": theirs}
        write_json(args.json, _plain(document))
    print(f"\ntotal run time {math.ceil(time.perf_counter() - started)} s")
    return 0


def _plain(value: Any) -> Any:
    if isinstance(value, Measured):
        return {**vars(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


if __name__ == "__main__":
    raise SystemExit(main())
