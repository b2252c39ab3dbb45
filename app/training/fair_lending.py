"""The fair-lending screen: the adverse impact ratio (AIR) of approval rates per group of each
screened fairness grouping, against the most favoured group, at the model's own cutoff.

A group breaches the screen when its AIR is below `fair_lending_screen` (0.80 by default: the
practitioners' four-fifths convention, borrowed from the EEOC, not a lending rule) and Fisher's
exact test of its approvals against the most favoured group's is significant at
`fair_lending_alpha`: twelve applicants with four approvals are reported, not over-read. The
same findings refuse registration and promotion and, over live windows, raise the alert.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import pandas as pd

from app.config import Settings
from app.dataset.policy import Grouping

# Where a version's run keeps its screenings: test.json at training, promotion-<time>.json.
ARTIFACT_DIR = "fair_lending"


@dataclass(frozen=True)
class Screen:
    """The screen's settings and the groupings it applies to (the spec's `screen: true`)."""

    ratio: float  # 0 turns the screen off
    alpha: float
    groupings: tuple[str, ...]

    @property
    def on(self) -> bool:
        return self.ratio > 0 and bool(self.groupings)


def screen_of(settings: Settings) -> Screen:
    groupings = settings.load_dataset().spec.fairness.groupings
    return Screen(
        ratio=settings.fair_lending_screen,
        alpha=settings.fair_lending_alpha,
        groupings=tuple(name for name, g in groupings.items() if g.screen),
    )


@dataclass(frozen=True)
class Finding:
    """A group of a screened grouping whose approval rate is below the screen's share of the
    most favoured group's; `breach` when that is also significant."""

    grouping: str
    group: str
    n: int
    approvals: int
    ratio: float
    p_value: float
    breach: bool

    def text(self) -> str:
        significance = "" if self.breach else ", not significant"
        return (
            f"{self.grouping} {self.group!r} adverse impact ratio {self.ratio:.2f} "
            f"({self.approvals} of {self.n} approved, p={self.p_value:.2g}{significance})"
        )


def findings(summary: Mapping[str, pd.DataFrame], screen: Screen) -> list[Finding]:
    """The groups below the screen in each screened grouping of a fairness_summary (its
    reports' approval_rate_ratio and p_value); none when the screen is off."""
    if not screen.on:
        return []
    found = []
    for name in screen.groupings:
        report = summary.get(name)
        if report is None:
            continue
        for row in report.itertuples(index=False):
            ratio = float(row.approval_rate_ratio)
            # No approvals anywhere leaves the ratio undefined: every group is refused alike.
            if math.isnan(ratio) or ratio >= screen.ratio:
                continue
            p_value = float(row.p_value)
            group = (str(row.group), int(row.n), int(row.approvals))
            found.append(Finding(name, *group, ratio, p_value, breach=p_value < screen.alpha))
    return found


def breaches(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.breach]


def checks(screen: Screen, found: list[Finding]) -> dict[str, bool]:
    """One named check per screened grouping: passed when no group of it breaches."""
    if not screen.on:
        return {}
    failed = {f.grouping for f in breaches(found)}
    return {
        f"{name} adverse impact ratio >= {screen.ratio} (or p >= {screen.alpha})": (
            name not in failed
        )
        for name in screen.groupings
    }


def describe(found: list[Finding]) -> str:
    return "; ".join(f.text() for f in found)


def record(screen: Screen, summary: Mapping[str, pd.DataFrame], found: list[Finding]) -> dict:
    """What the version's MLflow run keeps of one screening: the settings, each grouping's
    table and the findings."""
    return {
        "screen": screen.ratio,
        "alpha": screen.alpha,
        "screened": list(screen.groupings),
        "passed": not breaches(found),
        "findings": [asdict(f) for f in found],
        "groupings": {
            name: report.astype(object).where(report.notna(), None).to_dict("records")
            for name, report in summary.items()
        },
    }


def grouping_present(grouping: Grouping, columns: list[str]) -> bool:
    """Whether a frame with `columns` can be grouped this way (live windows hold only the
    model's columns: a protected column the model does not read is not there)."""
    return grouping.column in columns
