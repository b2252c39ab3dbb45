"""Apply the Feast definitions and materialize new feature rows into the online store."""

from __future__ import annotations

import argparse
import time

from app.config import load_settings
from app.console import ProgressLines
from app.data.snapshot import current_snapshot
from app.features.repo import feast_commands
from app.features.store import check_online_store, materialize
from app.runtime import init_ray, run_job, setup_logging


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.materialize", description=__doc__)
    parser.add_argument(
        "--full", action="store_true", help="reload every row, not only those since the last run"
    )
    parser.add_argument("--online-store", choices=["sqlite", "redis"], help="default: settings")
    args = parser.parse_args()
    setup_logging()
    overrides = {"online_store": args.online_store} if args.online_store else {}
    settings = load_settings(**overrides)
    started = time.perf_counter()
    # What is missing is named before a Ray starts (seconds here), not after.
    current_snapshot(settings.offline_dir)
    check_online_store(settings)
    # Its own local Ray (or the cluster's): a large load is written by Ray Data tasks.
    init_ray(settings)
    report = materialize(settings, full=args.full, on_progress=ProgressLines())
    mode = "incremental" if report.incremental else f"full from {report.start:%Y-%m-%d}"
    print(
        f"materialized {', '.join(report.views)} ({mode}, up to {report.end:%Y-%m-%d %H:%M} UTC) "
        f"from snapshot {report.snapshot_id} into {report.online_store} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    print(f"Feast feature repo: {report.repo_dir}")
    for command in feast_commands(settings):
        print(f"  {command}")
    return 0


if __name__ == "__main__":
    run_job(main)
