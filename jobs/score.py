"""Score a whole table of applications in batch: same model, features and reasons as the API."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.config import load_settings
from app.runtime import init_ray, run_job, setup_logging
from app.scoring import score_table


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.score", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", type=Path, help="Parquet file or directory to score")
    source.add_argument("--snowflake-table", help="Snowflake table to score (settings' schema)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--output", type=Path, help="directory for decisions.parquet")
    target.add_argument("--snowflake-output", help="Snowflake table to write the decisions to")
    parser.add_argument("--alias", default="champion", help="registry alias to score with")
    parser.add_argument("--threshold", type=float, help="PD cut-off (default: the model's)")
    parser.add_argument("--concurrency", type=int, default=2, help="scoring actors")
    parser.add_argument(
        "--cpus-per-actor",
        type=float,
        default=0.5,
        help="CPUs per actor (below 1 leaves the read tasks a core)",
    )
    parser.add_argument(
        "--no-counter-offers",
        action="store_true",
        help="no counter-offers to declines (bounds: the CREDIT_COUNTER_OFFER_* settings)",
    )
    args = parser.parse_args()
    setup_logging()
    settings = load_settings()
    init_ray(settings)
    report = score_table(
        settings,
        output_path=args.output,
        input_path=args.input,
        snowflake_table=args.snowflake_table,
        snowflake_output=args.snowflake_output,
        alias=args.alias,
        decision_threshold=args.threshold,
        concurrency=args.concurrency,
        cpus_per_actor=args.cpus_per_actor,
        counter_offers=not args.no_counter_offers,
    )
    print(
        f"scored {report.scored} of {report.rows} rows with {settings.model_name} "
        f"v{report.model_version} ({report.declined} declined, {report.offered} of them with "
        f"a counter-offer, {report.unknown} unknown applicants) -> {report.output}"
    )
    return 0


if __name__ == "__main__":
    run_job(main)
