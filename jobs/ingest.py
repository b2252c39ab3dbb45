"""Ingest the warehouse tables through Ray Data into a validated offline snapshot."""

from __future__ import annotations

import argparse

from app.config import load_settings
from app.data.ingest import ingest
from app.data.sources import check_source
from app.runtime import init_ray, run_job, setup_logging


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.ingest", description=__doc__)
    parser.add_argument("--source", choices=["local", "snowflake"], help="default: CREDIT_SOURCE")
    args = parser.parse_args()
    setup_logging()
    overrides = {"source": args.source} if args.source else {}
    settings = load_settings(**overrides)
    check_source(settings)
    init_ray(settings)
    print(ingest(settings).summary())
    return 0


if __name__ == "__main__":
    run_job(main)
