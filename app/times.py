"""Times a user types or a record holds, read one way everywhere: ISO 8601, UTC when no zone is
given (the prediction log, the registry's audit and the drift records all keep UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.errors import CreditRiskError


def parse_utc(text: str, what: str) -> datetime:
    """`text` as an aware UTC datetime: a date, or a date and time with or without an offset.
    CreditRiskError naming `what` (the flag or field) and an example otherwise."""
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CreditRiskError(
            f"{what} {text!r} is not an ISO 8601 date or time (e.g. 2026-12-01 or "
            "2026-12-01T09:30, UTC unless it has an offset)"
        ) from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
