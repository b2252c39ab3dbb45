"""Promote the challenger to champion (if it earned it), roll back, or show the alias history."""

from __future__ import annotations

import argparse

from app.config import load_settings
from app.runtime import run_job, setup_logging
from app.training import registry
from app.training.promote import promote, rollback


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.promote", description=__doc__)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--force", action="store_true", help="promote without comparing")
    action.add_argument("--rollback", action="store_true", help="restore the previous champion")
    action.add_argument("--history", action="store_true", help="print the alias audit history")
    args = parser.parse_args()
    setup_logging()
    settings = load_settings()
    if args.history:
        events = registry.history(registry.client(settings), settings.model_name)
        for event in events:
            print(event.line())
        if not events:
            print(f"no history for model {settings.model_name!r}")
        return 0
    result = rollback(settings) if args.rollback else promote(settings, force=args.force)
    previous = f"v{result.previous_champion}" if result.previous_champion else "none"
    print(f"champion: v{result.champion} (was {previous})")
    return 0


if __name__ == "__main__":
    run_job(main)
