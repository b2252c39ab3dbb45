"""A drift record's fair-lending figures (approvals per group as answered, the adverse impact
ratio, Fisher's p, the screen's verdict) as the report's columns and its section."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from app.monitoring.htmlparts import html_table, newest_with, note

SCREEN_NOTE = (
    "Approvals per group as answered. The adverse impact ratio (approval_rate_ratio) is a "
    "group's approval rate over the most favoured group's; p_value is Fisher's exact test of "
    "the gap. A group of a screened grouping breaches when its ratio is below "
    "CREDIT_FAIR_LENDING_SCREEN and p is below CREDIT_FAIR_LENDING_ALPHA."
)
NONE_YET = "no drift check with approvals per group yet (a grouping's column must be logged)"


def fairness_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The columns a drift record adds to the history: the group with the lowest adverse
    impact ratio, how many groups breach the screen, and the figures (for the section)."""
    figures = record.get("fairness") or {}
    lowest: tuple[str, str, float] | None = None
    breaches = 0
    for grouping, rows in figures.items():
        for row in rows:
            breaches += bool(row.get("breach"))
            ratio = row.get("approval_rate_ratio")
            if ratio is not None and (lowest is None or float(ratio) < lowest[2]):
                lowest = (grouping, str(row["group"]), float(ratio))
    return {
        "lowest_air": None if lowest is None else f"{lowest[0]} {lowest[1]} {lowest[2]:.2f}",
        # Text: a check from before the figures were kept has none, not 0.
        "screen_breaches": str(breaches) if figures else None,
        "fairness": figures,
    }


def group_tables(figures: dict[str, list[dict[str, Any]]], heading: str) -> str:
    """A check's approvals per group, one titled table per grouping (the report's section and
    each check's Evidently page)."""
    digits = {"approval_rate": 3, "approval_rate_ratio": 3, "p_value": 4}
    return "".join(
        f"<{heading}>Approvals by {html.escape(grouping)} (adverse impact ratio)</{heading}>"
        + html_table(pd.DataFrame(rows), digits)
        for grouping, rows in figures.items()
    )


def fairness_section(history: pd.DataFrame) -> str:
    """The newest check's approvals per group, one table per grouping."""
    newest = newest_with(history, "fairness")
    if newest is None:
        return note(NONE_YET)
    when = f"{newest['checked_at']:%Y-%m-%d %H:%M:%S} UTC"
    caption = f"<p>Check of {when} ({newest['source']}). {html.escape(SCREEN_NOTE)}</p>"
    return caption + group_tables(newest["fairness"], "h3")
