"""Benchmark: single-applicant online feature lookups, Feast on SQLite vs Redis.

Self-contained: starts a private redis-server and one local Ray (2 CPUs), writes
`--applicants` synthetic applicants as local warehouse tables, ingests them (Ray Data +
validation), materializes the features into SQLite and into the private Redis, then times
`--lookups` lookups of random applicants (after `--warmup` untimed ones) per store, `--repeats`
times, through:

  service          `app.features.store.get_online_features` (the serving path: the feature
                   service, including the on-demand `application_features` view fed by the
                   application's request fields)
  service, cached  the same service object fetched once from the registry cache, then
                   `store.get_online_features(features=service, ...)` per lookup
  raw views        only the two materialized feature views (feature refs, no on-demand view,
                   entity key only)

All variants look up the same applicants in the same order; the calls are interleaved in
blocks of 100 so a noisy neighbour slows every variant alike. Run from the project root:

    .venv/bin/python benchmarks/feast_online.py --applicants 10000 --lookups 2000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.localservices import ManagedProcess, start_redis

BLOCK = 100  # lookups per variant before switching to the next one


# --- measurement ---------------------------------------------------------------------------


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    values = np.asarray(latencies_ms)
    return {
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "p99": float(np.percentile(values, 99)),
        "mean": float(values.mean()),
    }


def quiet() -> None:
    """Silence library chatter (re-applied after Ray starts, which resets some of it)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="On demand feature view is an experimental")
    for noisy in ("feast", "ray", "ray.data"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--applicants", type=int, default=10_000, help="synthetic applicants")
    parser.add_argument("--lookups", type=int, default=2_000, help="timed lookups per variant")
    parser.add_argument("--warmup", type=int, default=50, help="untimed lookups per variant")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed passes over the lookups (medians reported)"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed for picking applicants")
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    script_started = time.perf_counter()
    work_dir = Path(tempfile.mkdtemp(prefix="bench_feast_online_"))
    redis: ManagedProcess | None = None
    ray_started = False
    try:
        redis = start_redis()  # private, non-persistent, on a free port (never 6379)
        redis_port = redis.port
        print(
            f"redis-server on 127.0.0.1:{redis_port} (pid {redis.process.pid}), work dir {work_dir}"
        )

        import ray

        from app.config import load_settings
        from app.data.ingest import ingest
        from app.data.schema import REQUEST_COLUMNS
        from app.data.snapshot import load_snapshot
        from app.data.warehouse import source_tables, write_local_tables
        from app.features.store import get_online_features, get_store, materialize
        from app.runtime import configure_ray_data

        quiet()

        stores = ("sqlite", "redis")
        settings = {
            name: load_settings(
                data_dir=work_dir / "data",
                _env_file=None,
                online_store=name,
                redis_port=redis_port,
            )
            for name in stores
        }
        base = settings["sqlite"]

        started = time.perf_counter()
        tables = source_tables(base.raw_data_path, base.seed, rows=args.applicants)
        write_local_tables(tables, base.local_source_dir)
        del tables
        print(f"wrote {args.applicants:,} applicants ({time.perf_counter() - started:.1f} s)")

        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_started = True
        configure_ray_data()
        quiet()

        report = ingest(base)
        counts = ", ".join(
            f"{t.name} {t.valid:,} valid / {t.rejected} rejected" for t in report.tables
        )
        print(f"ingested snapshot {report.snapshot_id}: {counts} ({report.seconds:.1f} s)")
        for name in stores:
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # Feast's coloured progress lines
                materialized = materialize(settings[name], full=True)
            print(
                f"materialized {', '.join(materialized.views)} into {materialized.online_store} "
                f"({time.perf_counter() - started:.1f} s)"
            )
        # Ray is only needed for ingest; stop it so its processes do not compete for the CPUs.
        ray.shutdown()
        ray_started = False

        applications = load_snapshot(base.offline_dir, "loan_applications")
        rng = np.random.default_rng(args.seed)
        picks = rng.integers(0, len(applications), size=args.warmup + args.lookups)
        rows: list[dict[str, Any]] = []
        for i in picks:
            application = applications.iloc[int(i)]
            row: dict[str, Any] = {"applicant_id": str(application["applicant_id"])}
            for column in REQUEST_COLUMNS:
                value = application[column]
                row[column] = value if isinstance(value, str) else int(value)
            rows.append(row)

        service_name = base.feature_service_name
        variants: dict[str, Callable[[dict[str, Any]], Any]] = {}
        for name in stores:
            store = get_store(settings[name])
            service = store.get_feature_service(service_name, allow_cache=True)
            on_demand = {v.name for v in store.list_on_demand_feature_views()}
            refs = [
                f"{p.name_to_use()}:{f.name}"
                for p in service.feature_view_projections
                if p.name not in on_demand
                for f in p.features
            ]

            def app_path(row, store=store):
                return get_online_features(store, service_name, [row])

            def cached_service(row, store=store, service=service):
                return store.get_online_features(features=service, entity_rows=[row]).to_df()

            def raw_views(row, store=store, refs=refs):
                entity = {"applicant_id": row["applicant_id"]}
                return store.get_online_features(features=refs, entity_rows=[entity]).to_df()

            variants[f"{name} service"] = app_path
            variants[f"{name} service, cached"] = cached_service
            variants[f"{name} raw views"] = raw_views

        # Both stores must answer, with the same values.
        answers = {}
        for label, fn in variants.items():
            frame = fn(rows[0])
            missing = [c for c in frame.columns if frame[c].isna().any()]
            if missing:
                raise RuntimeError(f"{label}: no value for {', '.join(missing)}")
            answers[label] = frame.iloc[0].to_dict()
        for kind in ("service", "service, cached", "raw views"):
            if answers[f"sqlite {kind}"] != answers[f"redis {kind}"]:
                raise RuntimeError(f"sqlite and redis disagree on {kind}")
        n_features = {label: len(a) - 1 for label, a in answers.items()}

        for fn in variants.values():
            for row in rows[: args.warmup]:
                fn(row)
        timed_rows = rows[args.warmup :]
        # One dict of percentiles per variant and repeat; the table shows medians over repeats.
        runs: dict[str, list[dict[str, float]]] = {label: [] for label in variants}
        for repeat in range(args.repeats):
            latencies: dict[str, list[float]] = {label: [] for label in variants}
            for start in range(0, len(timed_rows), BLOCK):
                block = timed_rows[start : start + BLOCK]
                for label, fn in variants.items():
                    out = latencies[label]
                    for row in block:
                        t0 = time.perf_counter()
                        fn(row)
                        out.append((time.perf_counter() - t0) * 1000)
            for label, values in latencies.items():
                runs[label].append(percentiles(values))
            p50s = ", ".join(f"{label} {runs[label][-1]['p50']:.2f}" for label in variants)
            print(f"repeat {repeat + 1}: p50 ms: {p50s}")

        stats = {
            label: {k: statistics.median(r[k] for r in results) for k in results[0]}
            for label, results in runs.items()
        }
        print()
        print(
            f"{args.lookups:,} single-applicant lookups per variant and repeat (after "
            f"{args.warmup} warm-up), {args.applicants:,} applicants, one thread; "
            f"medians over {args.repeats} repeats"
        )
        header = (
            f"{'variant':<24} {'features':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
            f"{'mean ms':>8} {'lookups/s':>10}"
        )
        print(header)
        print("-" * len(header))
        for label, s in stats.items():
            print(
                f"{label:<24} {n_features[label]:>8} {s['p50']:>8.2f} {s['p95']:>8.2f} "
                f"{s['p99']:>8.2f} {s['mean']:>8.2f} {1000 / s['mean']:>10.0f}"
            )
        print()
        print("Redis / SQLite (latency ratio; < 1 means Redis is faster):")
        for kind in ("service", "service, cached", "raw views"):
            r, q = stats[f"redis {kind}"], stats[f"sqlite {kind}"]
            print(
                f"  {kind:<16} p50 {r['p50'] / q['p50']:.2f}x, p95 {r['p95'] / q['p95']:.2f}x, "
                f"p99 {r['p99'] / q['p99']:.2f}x, lookups/s {q['mean'] / r['mean']:.2f}x"
            )
        print("what the on-demand view and the registry read cost per lookup (p50):")
        for name in stores:
            service_p50 = stats[f"{name} service"]["p50"]
            cached_p50 = stats[f"{name} service, cached"]["p50"]
            raw_p50 = stats[f"{name} raw views"]["p50"]
            print(
                f"  {name:<6} registry re-read {service_p50 - cached_p50:+.2f} ms, "
                f"on-demand view {cached_p50 - raw_p50:+.2f} ms "
                f"(service {service_p50:.2f} ms = {service_p50 / raw_p50:.1f}x raw views)"
            )
        print(f"total run time {math.ceil(time.perf_counter() - script_started)} s")
        return 0
    finally:
        if ray_started:
            import ray

            ray.shutdown()
        if redis is not None:
            redis.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
