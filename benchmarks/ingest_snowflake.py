"""Benchmark: reading a Snowflake table into Ray, ours vs Ray's read_snowflake vs the connector.

Self-contained: starts a private fakesnow server (the real Snowflake connector talks HTTP to
it), one local Ray (2 CPUs), seeds `--rows` synthetic applicants into the `loan_applications`
table with a real PUT + COPY INTO, then reads that table fully `--repeats` times with:

  ours p=N          `read_snowflake_table` (Arrow result batches, N hash-partition queries),
                    materialized
  read_snowflake    Ray's built-in `ray.data.read_snowflake` (fetchall into Python tuples),
                    materialized
  fetch_arrow_all   the connector alone: connect, `cursor.execute`, `fetch_arrow_all` (no Ray)
  ingest p=N        `read_and_validate` (our read + row validation, to pandas)

Every timing includes connecting to the server; every run must return exactly `--rows` rows.
Each run also records the CPU time the fakesnow server used, to tell server from client work.
Run from the project root:

    .venv/bin/python benchmarks/ingest_snowflake.py --rows 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from app.localservices import ManagedProcess, start_fakesnow

TABLE = "loan_applications"


# --- processes this script starts ------------------------------------------------------------


def start_fakesnow_in(work_dir: Path) -> ManagedProcess:
    """fakesnow's server, logging to `work_dir`, with its stage bucket under `work_dir` too.

    fakesnow creates the bucket that PUT copies files into with `tempfile.mkdtemp` when it is
    imported and never deletes it; pointing the server's TMPDIR at `work_dir` makes the staged
    copy of the seeded table go away with the work dir.
    """
    tmp = work_dir / "fakesnow_tmp"
    tmp.mkdir()
    previous = os.environ.get("TMPDIR")
    # Only the server sees it: this process resolved its temp dir at the mkdtemp in main.
    os.environ["TMPDIR"] = str(tmp)
    try:
        return start_fakesnow(work_dir / "fakesnow.log")
    finally:
        if previous is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = previous


# --- measurement ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], int], server_pid: int) -> tuple[float, float, int]:
    """(wall seconds, fakesnow server CPU seconds, rows) of one call."""
    gc.collect()
    cpu = cpu_seconds(server_pid)
    start = time.perf_counter()
    rows = fn()
    return time.perf_counter() - start, cpu_seconds(server_pid) - cpu, rows


def fmt_rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="applicants to seed")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant")
    parser.add_argument(
        "--partitions",
        default="1,2,4",
        help="comma-separated snowflake_read_partitions values for our reader",
    )
    parser.add_argument(
        "--ingest-partitions",
        default="1,2",
        help="comma-separated snowflake_read_partitions values for read_and_validate",
    )
    parser.add_argument(
        "--read-snowflake-repeats",
        type=int,
        default=None,
        help="timed runs of Ray's read_snowflake (default: --repeats; it is the slow one)",
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the untimed first read (which starts Ray workers and imports the connector)",
    )
    args = parser.parse_args()
    partitions = [int(p) for p in args.partitions.split(",") if p.strip()]
    ingest_partitions = [int(p) for p in args.ingest_partitions.split(",") if p.strip()]
    rs_repeats = args.read_snowflake_repeats
    if rs_repeats is None:
        rs_repeats = args.repeats

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for noisy in ("snowflake.connector", "ray.data", "ray"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    script_started = time.perf_counter()
    work_dir = Path(tempfile.mkdtemp(prefix="bench_ingest_snowflake_"))
    fakesnow: ManagedProcess | None = None
    ray_started = False
    try:
        fakesnow = start_fakesnow_in(work_dir)
        port, server_pid = fakesnow.port, fakesnow.process.pid
        print(f"fakesnow server on 127.0.0.1:{port} (pid {server_pid}), work dir {work_dir}")

        import ray

        from app.config import load_settings
        from app.data.ingest import read_and_validate
        from app.data.schema import TABLES
        from app.data.snowflake import (
            connect,
            connection_parameters,
            read_snowflake_table,
            seed_snowflake,
            table_query,
        )
        from app.data.validation import REASON
        from app.data.warehouse import source_tables
        from app.runtime import configure_ray_data

        def settings_for(**overrides):
            return load_settings(
                data_dir=work_dir / "data",
                _env_file=None,
                source="snowflake",
                snowflake_account="fake",
                snowflake_user="bench",
                snowflake_password="bench-password",
                snowflake_host="127.0.0.1",
                snowflake_port=port,
                snowflake_protocol="http",
                **overrides,
            )

        spec = TABLES[TABLE]
        base = settings_for()

        # Seed: generate, then PUT + COPY INTO (only loan_applications, 8 columns).
        started = time.perf_counter()
        tables = source_tables(base.raw_data_path, base.seed, rows=args.rows)
        generated = time.perf_counter() - started
        started = time.perf_counter()
        counts = seed_snowflake({TABLE: tables[TABLE]}, TABLES, base)
        seeded = time.perf_counter() - started
        del tables
        if counts[TABLE] != args.rows:
            raise RuntimeError(f"seeded {counts[TABLE]} rows, expected {args.rows}")
        print(
            f"seeded {TABLE}: {counts[TABLE]:,} rows, {len(spec.columns)} columns "
            f"(generate {generated:.1f} s, PUT + COPY INTO {seeded:.1f} s)"
        )

        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_started = True
        configure_ray_data()
        # Ray Data logs every execution at INFO through its own handler.
        logging.getLogger("ray.data").setLevel(logging.WARNING)

        sql = table_query(base, spec)
        params = connection_parameters(base)

        def ours(p: int) -> Callable[[], int]:
            settings = settings_for(
                snowflake_read_mode="result_batches", snowflake_read_partitions=p
            )

            def run() -> int:
                ds = read_snowflake_table(spec, settings).materialize()
                return ds.count()

            return run

        def read_snowflake() -> int:
            return ray.data.read_snowflake(sql, params).materialize().count()

        # Where the connector's time goes: execute (server work, HTTP, JSON) vs Arrow decode.
        split: dict[str, list[float]] = {"connect": [], "execute": [], "fetch_arrow_all": []}

        def fetch_arrow_all() -> int:
            t0 = time.perf_counter()
            with connect(params) as conn:
                cursor = conn.cursor()
                t1 = time.perf_counter()
                cursor.execute(sql)
                t2 = time.perf_counter()
                rows = cursor.fetch_arrow_all().num_rows
                t3 = time.perf_counter()
            split["connect"].append(t1 - t0)
            split["execute"].append(t2 - t1)
            split["fetch_arrow_all"].append(t3 - t2)
            return rows

        rejected: list[int] = []

        def ingest_read(p: int) -> Callable[[], int]:
            settings = settings_for(snowflake_read_partitions=p)

            def run() -> int:
                frame = read_and_validate(spec, settings)
                rejected.append(int(frame[REASON].notna().sum()))
                return len(frame)

            return run

        variants: list[tuple[str, Callable[[], int], int]] = [
            (f"ours p={p}", ours(p), args.repeats) for p in partitions
        ]
        variants += [
            ("read_snowflake", read_snowflake, rs_repeats),
            ("fetch_arrow_all", fetch_arrow_all, args.repeats),
        ]
        variants += [(f"ingest p={p}", ingest_read(p), args.repeats) for p in ingest_partitions]

        if not args.no_warmup:
            seconds, _, _ = timed(ours(partitions[-1]), server_pid)
            print(f"warm-up (untimed): ours p={partitions[-1]} {seconds:.1f} s")

        times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        server_cpu: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        for repeat in range(max(args.repeats, rs_repeats)):
            for name, fn, n in variants:
                if repeat >= n:
                    continue
                seconds, cpu, rows = timed(fn, server_pid)
                if rows != args.rows:
                    raise RuntimeError(f"{name} read {rows} rows, expected {args.rows}")
                times[name].append(seconds)
                server_cpu[name].append(cpu)
                print(
                    f"repeat {repeat + 1}: {name:<16} {seconds:8.2f} s "
                    f"(fakesnow server CPU {cpu:.2f} s)"
                )
        if any(rejected):
            print(f"note: read_and_validate flagged rejects: {rejected}")

        med = {name: statistics.median(ts) for name, ts in times.items()}
        rs, fa = med["read_snowflake"], med["fetch_arrow_all"]
        print()
        print(
            f"{args.rows:,} rows x {len(spec.columns)} columns of {TABLE}; "
            f"medians of {args.repeats} runs (read_snowflake: {rs_repeats})"
        )
        header = (
            f"{'variant':<16} {'median s':>9} {'min s':>8} {'max s':>8} {'rows/s':>12} "
            f"{'server CPU s':>13} {'vs read_snowflake':>18} {'vs fetch_arrow_all':>19}"
        )
        print(header)
        print("-" * len(header))
        for name, ts in times.items():
            ratio_rs = f"{rs / med[name]:.2f}x"
            ratio_fa = f"{fa / med[name]:.2f}x"
            print(
                f"{name:<16} {med[name]:>9.2f} {min(ts):>8.2f} {max(ts):>8.2f} "
                f"{fmt_rate(args.rows, med[name]):>12} "
                f"{statistics.median(server_cpu[name]):>13.2f} {ratio_rs:>18} {ratio_fa:>19}"
            )
        print()
        print("ratios are speed-ups (baseline median / variant median; > 1 means faster);")
        print("server CPU s: CPU the fakesnow server process used during the run (median)")
        parts = ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in split.items())
        print(f"fetch_arrow_all split (medians): {parts}")
        print("targets: ours >= 3x read_snowflake and >= 1.0x fetch_arrow_all")
        for name in times:
            if name.startswith("ours"):
                r1, r2 = rs / med[name], fa / med[name]
                print(
                    f"  {name}: {r1:.2f}x read_snowflake ({'met' if r1 >= 3 else 'NOT met'}), "
                    f"{r2:.2f}x fetch_arrow_all ({'met' if r2 >= 1.0 else 'NOT met'})"
                )
        print(f"total run time {time.perf_counter() - script_started:.0f} s")
        return 0
    finally:
        if ray_started:
            import ray

            ray.shutdown()
        if fakesnow is not None:
            fakesnow.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
