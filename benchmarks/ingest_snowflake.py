"""Reading a Snowflake table into Ray: ours (`read_snowflake_table`) vs Ray's `read_snowflake`
vs the connector's `fetch_arrow_all`, against a private fakesnow server, plus our read with
row validation (`read_and_validate`). Method and figures: docs/benchmarks.md, section 1."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness.cli import int_list, parser
from benchmarks.harness.procs import local_ray, quiet, work_dir
from benchmarks.harness.stats import median
from benchmarks.harness.tables import text_table

TABLE = "loan_applications"
FORMATS = ("{:.2f}", "{:.2f}", "{:.2f}", "{:,.0f}", "{:.2f}", "{:.2f}x", "{:.2f}x")
OPTIONS = [
    ("--rows", int, 1_000_000, "applicants to seed"),
    ("--repeats", int, 3, "timed runs per variant"),
    ("--partitions", int_list, [1, 2, 4], "snowflake_read_partitions values for our reader"),
    ("--ingest-partitions", int_list, [1, 2], "the same for read_and_validate"),
    ("--read-snowflake-repeats", int, None, "timed runs of read_snowflake (default: --repeats)"),
    ("--no-warmup", bool, False, "skip the untimed first read (Ray workers, connector import)"),
]


def start_fakesnow_in(folder: Path) -> Any:
    """fakesnow's server with its stage bucket under `folder`: it makes the bucket with
    tempfile.mkdtemp at import and never deletes it, so the server gets TMPDIR=folder."""
    from app.localservices import start_fakesnow

    (folder / "fakesnow_tmp").mkdir()
    previous = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder / "fakesnow_tmp")  # this process resolved its own already
    try:
        return start_fakesnow(folder / "logs" / "fakesnow.log")
    finally:
        os.environ.pop("TMPDIR") if previous is None else os.environ.update(TMPDIR=previous)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], int], server_pid: int) -> tuple[float, float, int]:
    """(wall seconds, fakesnow server CPU seconds, rows) of one call."""
    gc.collect()
    cpu, started = cpu_seconds(server_pid), time.perf_counter()
    rows = fn()
    return time.perf_counter() - started, cpu_seconds(server_pid) - cpu, rows


def variants(settings_for: Callable[..., Any], args: Any, split: dict) -> list[tuple]:
    """(name, read returning its row count, repeats) of every variant, in run order."""
    import ray

    from app.data.ingest import read_and_validate
    from app.data.snowflake import connect, connection_parameters, table_query
    from app.data.snowflake_reader import read_snowflake_table
    from app.data.validation import REASON

    base = settings_for()
    spec = base.load_dataset().tables[TABLE]
    sql, params = table_query(base, spec), connection_parameters(base)

    def ours(p: int) -> Callable[[], int]:
        settings = settings_for(snowflake_read_mode="result_batches", snowflake_read_partitions=p)
        return lambda: read_snowflake_table(spec, settings).materialize().count()

    def ingest(p: int) -> Callable[[], int]:
        settings = settings_for(snowflake_read_partitions=p)

        def run() -> int:
            frame = read_and_validate(spec, settings)
            if rejected := int(frame[REASON].notna().sum()):
                print(f"note: read_and_validate flagged {rejected} rejects")
            return len(frame)

        return run

    def fetch_arrow_all() -> int:
        marks = [time.perf_counter()]
        with connect(params) as conn:
            cursor = conn.cursor()
            marks.append(time.perf_counter())
            cursor.execute(sql)
            marks.append(time.perf_counter())
            rows = cursor.fetch_arrow_all().num_rows
            marks.append(time.perf_counter())
        for name, a, b in zip(split, marks[:-1], marks[1:], strict=True):
            split[name].append(b - a)
        return rows

    read_snowflake = lambda: ray.data.read_snowflake(sql, params).materialize().count()  # noqa: E731
    rs_repeats = args.read_snowflake_repeats or args.repeats
    return [
        *((f"ours p={p}", ours(p), args.repeats) for p in args.partitions),
        ("read_snowflake", read_snowflake, rs_repeats),
        ("fetch_arrow_all", fetch_arrow_all, args.repeats),
        *((f"ingest p={p}", ingest(p), args.repeats) for p in args.ingest_partitions),
    ]


def seed(settings: Any, rows: int) -> None:
    """Only loan_applications (8 columns), with a real PUT + COPY INTO."""
    from app.data.snowflake import seed_snowflake
    from app.data.warehouse import source_tables

    started = time.perf_counter()
    tables = source_tables(settings, rows=rows)
    generated, started = time.perf_counter() - started, time.perf_counter()
    specs = settings.load_dataset().tables
    counts = seed_snowflake({TABLE: tables[TABLE]}, specs, settings)
    if counts[TABLE] != rows:
        raise RuntimeError(f"seeded {counts[TABLE]} rows, expected {rows}")
    print(
        f"seeded {TABLE}: {rows:,} rows, {len(specs[TABLE].columns)} columns (generate "
        f"{generated:.1f} s, PUT + COPY INTO {time.perf_counter() - started:.1f} s)"
    )


def measure(runs: list[tuple], args: Any, server_pid: int) -> dict[str, list[tuple]]:
    """name -> (seconds, server CPU seconds) of each repeat, every variant per repeat."""
    if not args.no_warmup:
        seconds, _, _ = timed(runs[len(args.partitions) - 1][1], server_pid)
        print(f"warm-up (untimed): {runs[len(args.partitions) - 1][0]} {seconds:.1f} s")
    times: dict[str, list[tuple]] = {name: [] for name, _, _ in runs}
    for repeat in range(max(n for _, _, n in runs)):
        for name, fn, n in runs:
            if repeat < n:
                seconds, cpu, rows = timed(fn, server_pid)
                if rows != args.rows:
                    raise RuntimeError(f"{name} read {rows} rows, expected {args.rows}")
                times[name].append((seconds, cpu))
                print(f"repeat {repeat + 1}: {name:<16} {seconds:8.2f} s (server CPU {cpu:.2f} s)")
    return times


def report(times: dict[str, list[tuple]], split: dict[str, list[float]], args: Any) -> None:
    med = {name: median(s for s, _ in runs) for name, runs in times.items()}
    rs, fa = med["read_snowflake"], med["fetch_arrow_all"]

    def row(name: str, walls: list[float], cpus: list[float]) -> list[str]:
        m = med[name]
        cells = (m, min(walls), max(walls), args.rows / m, median(cpus), rs / m, fa / m)
        return [name, *(f.format(x) for f, x in zip(FORMATS, cells, strict=True))]

    header = ["variant", "median s", "min s", "max s", "rows/s", "server CPU s"]
    header += ["vs read_snowflake", "vs fetch_arrow_all"]
    runs = f"{args.repeats} runs (read_snowflake: {len(times['read_snowflake'])})"
    print(f"\n{args.rows:,} rows of {TABLE}; medians of {runs}")
    print(text_table(header, [row(name, *zip(*runs, strict=True)) for name, runs in times.items()]))
    print("\nratios are speed-ups (baseline median / variant median; > 1 means faster);")
    print("server CPU s: CPU the fakesnow server process used during the run (median)")
    parts = ", ".join(f"{k} {median(v):.2f} s" for k, v in split.items())
    print(f"fetch_arrow_all split (medians): {parts}")
    print("targets: ours >= 3x read_snowflake and >= 1.0x fetch_arrow_all")
    for name in (n for n in times if n.startswith("ours")):
        r1, r2 = rs / med[name], fa / med[name]
        print(
            f"  {name}: {r1:.2f}x read_snowflake ({'met' if r1 >= 3 else 'NOT met'}), "
            f"{r2:.2f}x fetch_arrow_all ({'met' if r2 >= 1.0 else 'NOT met'})"
        )


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, OPTIONS).parse_args(argv)
    quiet()
    started = time.perf_counter()
    with work_dir("bench_ingest_snowflake_") as folder:
        fakesnow = start_fakesnow_in(folder)
        try:
            from benchmarks.harness.workload import bench_settings

            port, pid = fakesnow.port, fakesnow.process.pid
            print(f"fakesnow server on 127.0.0.1:{port} (pid {pid}), work dir {folder}")
            snowflake = {"source": "snowflake", "snowflake_account": "fake"}
            snowflake |= {"snowflake_user": "bench", "snowflake_password": "bench-password"}
            snowflake |= {"snowflake_host": "127.0.0.1", "snowflake_port": port}
            snowflake |= {"snowflake_protocol": "http"}

            def settings_for(**overrides: Any) -> Any:
                return bench_settings(folder, **snowflake, **overrides)

            seed(settings_for(), args.rows)
            split: dict[str, list[float]] = {"connect": [], "execute": [], "fetch_arrow_all": []}
            with local_ray():
                times = measure(variants(settings_for, args, split), args, pid)
            report(times, split, args)
        finally:
            fakesnow.stop()
    print(f"total run time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
