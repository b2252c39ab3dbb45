"""The feed of answered decisions to the drift monitor: sampling under load."""

from __future__ import annotations

from tests.utils.datasets import german
from tests.utils.monitoring import Counter, records


def test_under_load_the_feed_sends_a_sample_that_carries_its_rate(make_settings):
    import random

    from app.serving.monitorfeed import MonitorFeed

    now = [0.0]
    feed = MonitorFeed(
        make_settings(monitor_max_rows_per_second=100),
        Counter(),
        draw=random.Random(3).random,
        clock=lambda: now[0],
    )
    # 50 rows a second: under the limit, every row goes, at rate 1.
    for second in range(3):
        now[0] = float(second)
        feed.offer(records(50))
    assert len(feed._rows) == 150 and {r["sample_rate"] for r in feed._rows} == {1.0}

    # A burst of 400 rows in a second goes whole: the rate is taken over 5 s.
    feed._rows.clear()
    now[0] = 10.0
    feed.offer(records(400))
    assert len(feed._rows) == 400

    # 1,000 rows a second for 10 s: sampled down, each row saying what it stands for.
    feed._rows.clear()
    for tick in range(100):
        now[0] = 20.0 + tick / 10
        feed.offer(records(100))
    assert 1_000 <= len(feed._rows) <= 2_500  # of 10,000
    late = [r["sample_rate"] for r in feed._rows[-50:]]
    assert all(0.09 <= rate <= 0.11 for rate in late)


def test_the_feed_sends_what_a_drift_check_reads_and_not_who_asked(make_settings):
    from app.monitoring.window import window_schema
    from app.serving.monitorfeed import MonitorFeed

    feed = MonitorFeed(make_settings(), Counter())
    asked = [
        {**r, "caller": "jwt:ab12", "caller_subject": "ann@example.com", "idempotency_key": "k"}
        for r in records(3)
    ]
    feed.offer(asked)
    assert set(feed._rows[0]) == set(window_schema(german()).names)
