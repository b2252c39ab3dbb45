"""Replay logged decisions: reach each again from its prediction-log record and its model
version's artifact (after aliases have moved and the spec has changed), and report what
differs. Exit 0: every decision reproduced; 1: one differs (or its record was altered);
2: an unknown request id, or a version whose artifact fails its digest."""

from __future__ import annotations

import argparse

from app.config import load_settings
from app.runtime import run_job, setup_logging
from app.serving import replay
from app.times import parse_utc


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.replay", description=__doc__)
    parser.add_argument("request_ids", nargs="*", metavar="REQUEST_ID")
    parser.add_argument("--since", help="audit: decisions logged since this day or time (UTC)")
    parser.add_argument("--sample", type=int, default=100, help="with --since: how many (100)")
    parser.add_argument("--seed", type=int, default=0, help="with --since: the draw's seed")
    args = parser.parse_args()
    if bool(args.request_ids) == bool(args.since):
        parser.error("give REQUEST_ID(s), or --since DATE [--sample N] for an audit")
    if args.sample < 1:
        parser.error("--sample must be at least 1")
    since = parse_utc(args.since, "--since") if args.since else None
    setup_logging()
    settings = load_settings()
    if since is not None:
        found = replay.sample_since(settings, since, args.sample, args.seed)
    else:
        found = [r for rid in args.request_ids for r in replay.by_request_id(settings, rid)]
    replayer = replay.Replayer(settings)
    done = [replayer.replay(record) for record in found]
    for result in done:
        print(result.line())
    differ = sum(not r.reproduced for r in done)
    print(f"{len(done)} replayed: {len(done) - differ} reproduced, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    run_job(main)
