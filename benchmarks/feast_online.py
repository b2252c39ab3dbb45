"""Single-applicant online feature lookups, Feast on SQLite vs a private Redis, through the
serving path, the same feature service cached, and the raw feature views. Method and figures:
docs/benchmarks.md, section 2."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness.cli import parser
from benchmarks.harness.procs import quiet, work_dir
from benchmarks.harness.stats import medians, percentiles
from benchmarks.harness.tables import text_table

BLOCK = 100  # lookups per variant before switching to the next one
STORES = ("sqlite", "redis")
PATHS = ("service", "service, cached", "raw views")
KEYS = ("p50", "p95", "p99", "mean")
OPTIONS = [
    ("--applicants", int, 10_000, "synthetic applicants"),
    ("--lookups", int, 2_000, "timed lookups per variant"),
    ("--warmup", int, 50, "untimed lookups per variant"),
    ("--repeats", int, 3, "timed passes over the lookups (medians reported)"),
    ("--seed", int, 7, "seed for picking applicants"),
]
Lookup = Callable[[dict[str, Any]], Any]


def lookups(settings: Any) -> dict[str, Lookup]:
    """The three ways to look one applicant up in this store."""
    from app.features.store import get_online_features, get_store

    store, name = get_store(settings), settings.feature_service_name
    service = store.get_feature_service(name, allow_cache=True)
    on_demand = {v.name for v in store.list_on_demand_feature_views()}
    refs = [
        f"{p.name_to_use()}:{f.name}"
        for p in service.feature_view_projections
        if p.name not in on_demand
        for f in p.features
    ]

    def raw_views(row: dict[str, Any]) -> Any:
        entity = [{"applicant_id": row["applicant_id"]}]
        return store.get_online_features(features=refs, entity_rows=entity).to_df()

    return {
        "service": lambda row: get_online_features(store, name, [row]),
        "service, cached": lambda row: store.get_online_features(
            features=service, entity_rows=[row]
        ).to_df(),
        "raw views": raw_views,
    }


def answers(variants: dict[str, Lookup], row: dict[str, Any]) -> dict[str, int]:
    """Features per variant, once both stores were checked to answer every feature, alike."""
    got = {}
    for label, lookup in variants.items():
        frame = lookup(row)
        if missing := [c for c in frame.columns if frame[c].isna().any()]:
            raise RuntimeError(f"{label}: no value for {', '.join(missing)}")
        got[label] = frame.iloc[0].to_dict()
    for path in PATHS:
        if got[f"sqlite {path}"] != got[f"redis {path}"]:
            raise RuntimeError(f"sqlite and redis disagree on {path}")
    return {label: len(answer) - 1 for label, answer in got.items()}


def timed_pass(variants: dict[str, Lookup], rows: list[dict[str, Any]]) -> dict[str, dict]:
    """Latency percentiles per variant over `rows`, interleaved in blocks so a noisy
    neighbour slows every variant alike."""
    latencies: dict[str, list[float]] = {label: [] for label in variants}
    for start in range(0, len(rows), BLOCK):
        for label, lookup in variants.items():
            for row in rows[start : start + BLOCK]:
                started = time.perf_counter()
                lookup(row)
                latencies[label].append((time.perf_counter() - started) * 1000)
    return {label: percentiles(values, KEYS) for label, values in latencies.items()}


def report(stats: dict[str, dict[str, float]], features: dict[str, int], args: Any) -> None:
    print(
        f"\n{args.lookups:,} single-applicant lookups per variant and repeat (after "
        f"{args.warmup} warm-up), {args.applicants:,} applicants, one thread; medians over "
        f"{args.repeats} repeats"
    )
    header = ["variant", "features", "p50 ms", "p95 ms", "p99 ms", "mean ms", "lookups/s"]
    rows = [
        [label, features[label], *(f"{s[k]:.2f}" for k in KEYS), f"{1000 / s['mean']:.0f}"]
        for label, s in stats.items()
    ]
    print(text_table(header, rows))
    print("\nRedis / SQLite (latency ratio; < 1 means Redis is faster):")
    for path in PATHS:
        r, q = stats[f"redis {path}"], stats[f"sqlite {path}"]
        ratios = ", ".join(f"{k} {r[k] / q[k]:.2f}x" for k in KEYS[:3])
        print(f"  {path:<16} {ratios}, lookups/s {q['mean'] / r['mean']:.2f}x")
    print("what the on-demand view and the registry read cost per lookup (p50):")
    for store in STORES:
        service, cached, raw = (stats[f"{store} {path}"]["p50"] for path in PATHS)
        print(
            f"  {store:<6} registry re-read {service - cached:+.2f} ms, on-demand view "
            f"{cached - raw:+.2f} ms (service {service:.2f} ms = {service / raw:.1f}x raw views)"
        )


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, OPTIONS).parse_args(argv)
    quiet()
    started = time.perf_counter()
    with work_dir("bench_feast_online_") as folder:
        from app.localservices import start_redis
        from benchmarks.harness.workload import bench_settings, prepare_features, request_rows

        redis = start_redis()  # private, non-persistent, on a free port (never 6379)
        try:
            print(f"redis-server on 127.0.0.1:{redis.port} (pid {redis.process.pid})")
            stores = [bench_settings(folder, online_store=s, redis_port=redis.port) for s in STORES]
            prepare_features(stores, args.applicants)  # Ray stops before the lookups
            rng, count = np.random.default_rng(args.seed), args.warmup + args.lookups
            rows = request_rows(stores[0], lambda n: rng.integers(0, n, size=count))
            variants = {
                f"{name} {path}": lookup
                for name, settings in zip(STORES, stores, strict=True)
                for path, lookup in lookups(settings).items()
            }
            features = answers(variants, rows[0])
            for lookup in variants.values():
                for row in rows[: args.warmup]:
                    lookup(row)
            runs = []
            for repeat in range(args.repeats):
                runs.append(timed_pass(variants, rows[args.warmup :]))
                p50s = ", ".join(f"{label} {r['p50']:.2f}" for label, r in runs[-1].items())
                print(f"repeat {repeat + 1}: p50 ms: {p50s}")
            report({label: medians([r[label] for r in runs]) for label in variants}, features, args)
        finally:
            redis.stop()
    print(f"total run time {math.ceil(time.perf_counter() - started)} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
