"""Tables as text or Markdown, ratios as text, and JSON documents written atomically."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.fs import atomic_write

Row = Sequence[object]


def _alignment(header: Row, align: str | None) -> str:
    """One "l" or "r" per column: the first column left, the figures right, by default."""
    return align or "l" + "r" * (len(header) - 1)


def text_table(header: Row, rows: Sequence[Row], align: str | None = None) -> str:
    """Columns padded to their widest cell, two spaces apart, a dashed line under the header;
    a short row (a failure's message) leaves its last columns empty."""
    align = _alignment(header, align)
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    cells = [row + [""] * (len(header) - len(row)) for row in cells]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        padded = (
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(row, widths, align, strict=True)
        )
        return "  ".join(padded).rstrip()

    dashes = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), dashes, *(line(row) for row in cells[1:])])


def markdown_table(header: Row, rows: Sequence[Row], align: str | None = None) -> str:
    align = _alignment(header, align)
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    lines = ["| " + " | ".join(str(c) for c in row) + " |" for row in [header, *rows]]
    return "\n".join([lines[0], rule, *lines[1:]])


def table(header: Row, rows: Sequence[Row], markdown: bool, align: str | None = None) -> str:
    return (markdown_table if markdown else text_table)(header, rows, align)


def ratio(a: float | None, b: float | None) -> str:
    """a / b as "1.23x", "n/a" when either is missing or b is 0."""
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def settings_of(args: Any) -> dict[str, Any]:
    """An argparse namespace as JSON-ready settings (paths as text)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def write_json(path: Path, document: Any, indent: int | None = 2) -> None:
    atomic_write(path, json.dumps(document, indent=indent, default=str) + "\n")
