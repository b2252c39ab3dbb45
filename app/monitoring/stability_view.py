"""A drift record's stability figures (PSI of the score, CSI per characteristic, on the
version's frozen bins) as the report's columns and its per-column table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from app.domain import PREDICTION
from app.monitoring.fairness_view import group_tables
from app.monitoring.htmlparts import html_table, newest_with
from app.training.stability import ACT, WATCH

BANDS_NOTE = (
    f"PSI of the score and CSI per characteristic on the bins frozen from the champion's "
    f"training rows: below {WATCH:.2f} stable, {WATCH:.2f}-{ACT:.2f} watch, {ACT:.2f} and "
    "above act."
)


def headline(figures: dict[str, dict[str, Any]]) -> tuple[float | None, tuple[str, float] | None]:
    """A check's stability figures in two: the score's PSI, and the characteristic with the
    largest CSI with its value (None where the check has none)."""
    score = figures.get(PREDICTION)
    csi = {c: float(f["psi"]) for c, f in figures.items() if c != PREDICTION}
    worst = max(csi, key=csi.__getitem__) if csi else None
    return (
        float(score["psi"]) if score else None,
        (worst, csi[worst]) if worst is not None else None,
    )


def stability_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The columns a drift record adds to the history: the score's PSI, the characteristic
    with the largest CSI, and the figures themselves (for `latest_stability`)."""
    figures = record.get("stability") or {}
    score, largest = headline(figures)
    return {
        "score_psi": math.nan if score is None else score,
        "largest_csi": None if largest is None else f"{largest[0]} {largest[1]:.3f}",
        "stability": figures,
    }


def latest_stability(history: pd.DataFrame) -> tuple[pd.Series | None, pd.DataFrame]:
    """The newest check that has stability figures, and its table: one row per column,
    largest first."""
    newest = newest_with(history, "stability")
    if newest is None:
        return None, pd.DataFrame()
    rows = [
        {
            "column": column,
            "index": "PSI" if column == PREDICTION else "CSI",
            "value": float(f["psi"]),
            "band": f["band"],
        }
        for column, f in newest["stability"].items()
    ]
    table = pd.DataFrame(rows).sort_values("value", ascending=False, kind="stable")
    return newest, table.reset_index(drop=True)


def check_section(payload: dict[str, Any]) -> str:
    """What a check's Evidently page lacks, as one HTML block: the PSI of the score and the
    CSI per characteristic on the frozen bins, and approvals per fairness group with the
    adverse impact ratio (each only when the check has them)."""
    parts = []
    figures = payload.get("stability") or {}
    if figures:
        rows = [
            {"column": c, "index": "PSI" if c == PREDICTION else "CSI",
             "value": float(f["psi"]), "band": f["band"]}
            for c, f in figures.items()
        ]  # fmt: skip
        table = pd.DataFrame(rows).sort_values("value", ascending=False, kind="stable")
        parts.append(f"<h2>Population and characteristic stability</h2><p>{BANDS_NOTE}</p>")
        parts.append(html_table(table.reset_index(drop=True), {"value": 4}))
    tables = group_tables(payload.get("fairness") or {}, "h2")
    if tables:
        parts.append(tables)
    if not parts:
        return ""
    style = "font-family:sans-serif;margin:2rem;max-width:70rem"
    return f'<section style="{style}">{"".join(parts)}</section>'


def append_section(path, section: str) -> None:
    """Put `section` at the end of the page's body (Evidently's own page is left as is)."""
    if not section:
        return
    text = path.read_text()
    at = text.rfind("</body>")
    path.write_text(text[:at] + section + text[at:] if at >= 0 else text + section)
