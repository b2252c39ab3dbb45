"""Delete prediction-log days (and set-aside journal segments) older than the retention period,
and record what went; a `--days` below prediction_log_retention_min_days is refused.

python -m jobs.retention [--days N] [--dry-run]     (daily, from cron or `ray job submit`)
"""

from __future__ import annotations

import argparse

from app.config import load_settings
from app.predictions.retention import apply_retention
from app.predictions.schema import schema_for
from app.runtime import run_job, setup_logging


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.retention", description=__doc__)
    parser.add_argument(
        "--days",
        type=int,
        default=None,
        help="keep this many days before today, UTC (default: prediction_log_retention_days; "
        "at least prediction_log_retention_min_days)",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would go; delete nothing")
    args = parser.parse_args()
    setup_logging()
    settings = load_settings()
    days = settings.prediction_log_retention_days if args.days is None else args.days
    done = apply_retention(
        settings.prediction_log_dir,
        days,
        dry_run=args.dry_run,
        min_days=settings.prediction_log_retention_min_days,
        schema=schema_for(settings.load_dataset()),
    )
    print(done.line())
    return 0


if __name__ == "__main__":
    run_job(main)
