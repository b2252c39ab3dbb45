"""poll: the first truthy result within the deadline, else WaitTimeout naming what was awaited."""

from __future__ import annotations

import itertools

import pytest

from app.waiting import WaitTimeout, poll


def test_poll_returns_the_first_result_that_is_not_none_or_false():
    answers = iter([None, False, 0, "ready"])
    # 0 counts as a result: only None and False mean "not yet".
    assert poll(lambda: next(answers), "a value", timeout=5, interval=0) == 0


def test_poll_gives_up_after_the_deadline_naming_what_and_the_last_answer():
    calls = itertools.count()

    def never() -> None:
        next(calls)

    with pytest.raises(WaitTimeout, match=r"the replica: not within 0.05 s \(last: None\)"):
        poll(never, "the replica", timeout=0.05, interval=0.01)
    assert next(calls) > 2  # it kept trying until the deadline
