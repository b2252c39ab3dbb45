"""A derived feature defined by a registered function (a spec's `function:`), for the tests."""

from __future__ import annotations

import numpy as np


def income_per_person(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Income shared by the borrower and the dependants (not expressible with `max` alone)."""
    people = np.fmax(arrays["late"], 0) + 1
    return arrays["income"] / people


def wrong_length(arrays: dict[str, np.ndarray]) -> np.ndarray:
    return np.zeros(1)
