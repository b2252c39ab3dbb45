"""HTML pieces of the monitoring report: tables, notes and inline PNG charts, with nothing to
fetch (the page opens offline), and the check a section shows."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd


def chart(draw: Callable[[Any], None], alt: str) -> str:
    """An <img> holding the PNG `draw(axes)` makes; Agg through the object API, so no pyplot
    state and no process-wide backend switch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 3.0), dpi=96, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.grid(alpha=0.3)
    draw(axes)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def cell(value: Any, digits: int = 3) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "-"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return str(value)


def html_table(frame: pd.DataFrame, digits: dict[str, int] | None = None) -> str:
    digits = digits or {}
    text = [c for c in frame.columns if frame[c].dtype == object]

    def row(values: Iterable[Any], tag: str) -> str:
        cells = [
            f"<{tag}{' class=t' if c in text else ''}>{html.escape(v)}</{tag}>"
            for c, v in zip(frame.columns, values, strict=True)
        ]
        return "<tr>" + "".join(cells) + "</tr>"

    body = [
        row((cell(v, digits.get(c, 3)) for c, v in zip(frame.columns, r, strict=True)), "td")
        for r in frame.itertuples(index=False)
    ]
    return "<table>" + row(map(str, frame.columns), "th") + "".join(body) + "</table>"


def note(text: str) -> str:
    return f'<p class="none">{html.escape(text)}</p>'


def newest_with(history: pd.DataFrame, column: str) -> pd.Series | None:
    """The newest check whose `column` (a dict of figures) is not empty; None if none is."""
    if column not in history.columns:
        return None
    with_figures = history[history[column].map(bool)]
    return None if with_figures.empty else with_figures.iloc[-1]
