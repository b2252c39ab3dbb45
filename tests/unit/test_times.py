"""Times typed on the command line or kept in records: one reading, UTC unless told otherwise."""

from datetime import UTC, datetime

import pytest

from app.errors import CreditRiskError
from app.times import parse_utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T09:30", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("2026-12-01 09:30:15.5", datetime(2026, 12, 1, 9, 30, 15, 500000, tzinfo=UTC)),
        ("2026-12-01T09:30Z", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        # An offset is kept and converted: 10:30 in UTC+1 is 09:30 UTC.
        ("2026-12-01T10:30+01:00", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        (" 2026-12-01T09:30 ", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_dates_and_times_read_as_utc(text, expected):
    parsed = parse_utc(text, "--since")
    assert parsed == expected and parsed.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("text", ["yesterday", "12/01/2026", "", "2026-13-01"])
def test_anything_else_names_the_flag_and_shows_the_form(text):
    with pytest.raises(CreditRiskError) as raised:
        parse_utc(text, "--until")
    message = str(raised.value)
    assert message.startswith(f"--until {text!r} is not an ISO 8601 date or time")
    assert "2026-12-01T09:30" in message
