"""Load the dataset's flat file (or synthetic rows shaped like it) into the source: local
files or Snowflake."""

from __future__ import annotations

import argparse
import time

from app.config import load_settings
from app.data.warehouse import source_tables, write_local_tables
from app.runtime import run_job, setup_logging


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.seed", description=__doc__)
    parser.add_argument("--target", choices=["local", "snowflake"], help="default: CREDIT_SOURCE")
    parser.add_argument(
        "--rows", type=int, help="synthetic applicants to generate (default: the shipped 1,000)"
    )
    parser.add_argument("--shift", help="named distribution shift for synthetic data")
    args = parser.parse_args()
    setup_logging()
    settings = load_settings()
    target = args.target or settings.source
    started = time.perf_counter()
    tables = source_tables(settings, rows=args.rows, shift=args.shift)
    if target == "snowflake":
        from app.data.snowflake import seed_snowflake

        counts = seed_snowflake(tables, settings.load_dataset().tables, settings)
        where = f"Snowflake {settings.snowflake_database}.{settings.snowflake_schema}"
    else:
        write_local_tables(tables, settings)
        counts = {name: len(df) for name, df in tables.items()}
        where = str(settings.local_source_dir)
    for name, count in counts.items():
        print(f"seeded {name}: {count:,} rows")
    print(f"source ready in {where} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    run_job(main)
