"""Ingest the warehouse tables through Ray Data into a validated offline snapshot."""

from __future__ import annotations

import argparse

from app.config import load_settings
from app.data.ingest import IngestReport, ingest
from app.data.sources import check_source
from app.runtime import init_ray, run_job, setup_logging


def print_report(report: IngestReport) -> None:
    for table in report.tables:
        print(
            f"{table.name:<22} read {table.read:>9,}  valid {table.valid:>9,}  "
            f"rejected {table.rejected:>7,}"
        )
        for reason, count in table.top_reasons.items():
            print(f"    {count:>7,} x {reason}")
    print(f"snapshot {report.snapshot_id} -> {report.snapshot_path} ({report.seconds:.1f} s)")
    if report.rejected:
        print(f"rejected rows and their reasons: {report.snapshot_path}/rejects_<table>.csv")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.ingest", description=__doc__)
    parser.add_argument("--source", choices=["local", "snowflake"], help="default: CREDIT_SOURCE")
    args = parser.parse_args()
    setup_logging()
    overrides = {"source": args.source} if args.source else {}
    settings = load_settings(**overrides)
    check_source(settings)
    init_ray(settings)
    print_report(ingest(settings))
    return 0


if __name__ == "__main__":
    run_job(main)
