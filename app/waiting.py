"""Waiting for something to become true, with a deadline (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """What was awaited did not happen within the deadline."""


def poll(check: Callable[[], T | None], what: str, timeout: float, interval: float = 0.1) -> T:
    """`check()`'s first result that is neither None nor False, trying every `interval` s;
    WaitTimeout naming `what` (and the last result) once `timeout` s have passed."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last is not None and last is not False:
            return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not within {timeout:g} s (last: {last!r})")
        time.sleep(interval)
