"""Promote the challenger to champion (if it earned it), roll back, or show the alias history."""

from __future__ import annotations

import argparse

from app.config import Settings, load_settings
from app.runtime import run_job, setup_logging
from app.times import parse_utc
from app.training import registry
from app.training.promote import promote, rollback


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.promote", description=__doc__)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--force", action="store_true", help="promote without comparing")
    action.add_argument("--rollback", action="store_true", help="restore the previous champion")
    action.add_argument("--history", action="store_true", help="print the alias audit history")
    parser.add_argument(
        "--at",
        help="with --history: the history up to this time (ISO 8601, UTC if no zone) and the "
        "version each alias named then",
    )
    args = parser.parse_args()
    if args.at and not args.history:
        parser.error("--at goes with --history")
    setup_logging()
    settings = load_settings()
    if args.history:
        return show_history(settings, args.at)
    result = rollback(settings) if args.rollback else promote(settings, force=args.force)
    previous = f"v{result.previous_champion}" if result.previous_champion else "none"
    print(f"champion: v{result.champion} (was {previous})")
    for finding in result.found:
        # Below the screen but not significant, or a breach forced through: said, not hidden.
        print(f"  fair-lending screen: {finding.text()}")
    print(f"  model card: {result.card}")
    return 0


def show_history(settings: Settings, at_text: str | None) -> int:
    """The audit history (up to `at_text`, and who was champion then)."""
    at = parse_utc(at_text, "--at") if at_text else None
    events = registry.history(registry.client(settings), settings.model_name)
    shown = [e for e in events if at is None or registry.event_time(e) <= at]
    for event in shown:
        print(event.line())
    if not events:
        print(f"no history for model {settings.model_name!r}")
    if at is None:
        return 0
    named = registry.aliases_at(events, at)
    print(f"at {at:%Y-%m-%dT%H:%M:%SZ}:" if named else f"at {at:%Y-%m-%dT%H:%M:%SZ}: no alias set")
    for alias, event in sorted(named.items()):
        print(f"  {alias}: v{event.version} (since {event.time}, {event.action} by {event.user})")
    return 0


if __name__ == "__main__":
    run_job(main)
