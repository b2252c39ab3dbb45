"""Pure arithmetic of the scale benchmark: growth exponents, rates and the result table."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

MIB = 1024 * 1024


@dataclass
class Measured:
    """One stage (ours or its peer) at one size."""

    stage: str
    rows: int
    seconds: float
    driver_peak: int  # bytes: the driver's RSS, sampled
    ray_peak: int  # bytes: the whole Ray tree's RSS (raylet, GCS, workers), sampled
    detail: str = ""
    peer: str = ""  # the peer's name; "" for ours
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else math.nan


def exponent(n1: int, t1: float, n2: int, t2: float) -> float:
    """k in t ∝ n^k between two sizes; NaN when a time is missing or not positive."""
    if min(t1, t2) <= 0 or n1 == n2 or any(math.isnan(x) for x in (t1, t2)):
        return math.nan
    return math.log(t2 / t1) / math.log(n2 / n1)


def exponents(points: Sequence[tuple[int, float]]) -> list[float]:
    """The exponent from each size to the next, in size order (one fewer than the points)."""
    ordered = sorted(points)
    return [exponent(*a, *b) for a, b in itertools.pairwise(ordered)]


def mib(value: int) -> str:
    return f"{value / MIB:,.0f}" if value else "-"


def fmt_rate(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value / 1e3:,.1f}k" if value >= 1e3 else f"{value:,.0f}"


HEADER = (
    "stage",
    "rows",
    "ours s",
    "rows/s",
    "driver MiB",
    "Ray MiB",
    "k",
    "peer",
    "peer s",
    "peer driver MiB",
    "peer/ours",
)


def rows_of(ours: Sequence[Measured], peers: Sequence[Measured]) -> list[list[str]]:
    """One row per stage and size, stages in the order first run; k is the exponent from the
    previous size of the same stage."""
    order = list(dict.fromkeys(m.stage for m in ours))
    peer_of = {(m.stage, m.rows): m for m in peers}
    out = []
    for stage in order:
        runs = sorted((m for m in ours if m.stage == stage), key=lambda m: m.rows)
        previous = None
        for m in runs:
            k = exponent(previous.rows, previous.seconds, m.rows, m.seconds) if previous else None
            peer = peer_of.get((stage, m.rows))
            out.append(
                [
                    stage,
                    f"{m.rows:,}",
                    f"{m.seconds:.2f}",
                    fmt_rate(m.rate),
                    mib(m.driver_peak),
                    mib(m.ray_peak),
                    "-" if k is None or math.isnan(k) else f"{k:.2f}",
                    peer.peer if peer else "",
                    f"{peer.seconds:.2f}" if peer else "",
                    mib(peer.driver_peak) if peer else "",
                    f"{peer.seconds / m.seconds:.2f}x" if peer and m.seconds > 0 else "",
                ]
            )
            previous = m
    return out


def total_seconds(ours: Sequence[Measured], rows: int) -> float:
    """The whole loop at one size: every stage of ours, summed."""
    return sum(m.seconds for m in ours if m.rows == rows)
