"""The drafted spec and its text: nested dicts in output order, a review note per path, and
the `dataset.yaml` they make with each note as a `# review:` comment on the line it concerns.
Part of drafting (app.dataset.infer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass
class Draft:
    """The spec as nested dicts in output order, and a review note per path inside it."""

    spec: dict[str, Any]
    notes: dict[tuple[str, ...], str] = field(default_factory=dict)
    header: list[str] = field(default_factory=list)

    def note(self, path: Sequence[str], text: str) -> None:
        key = tuple(path)
        self.notes[key] = f"{self.notes[key]}; {text}" if key in self.notes else text


class Flow(dict):
    """A mapping written on one line (`{code: R01, subject: age}`)."""


def _flow(value: Any) -> str:
    """One value as YAML on one line (quoted where YAML would misread it)."""
    if isinstance(value, Flow):
        value = dict(value)
    text = yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, allow_unicode=True, width=10**9
    )
    return text.removesuffix("\n...\n").strip()


def _lines(node: dict[str, Any], draft: Draft, path: tuple[str, ...], depth: int) -> list[str]:
    # Written by hand rather than by yaml.dump, which cannot put a comment on a line.
    pad = "  " * depth
    out: list[str] = []
    for key, value in node.items():
        here = (*path, key)
        note = draft.notes.get(here)
        comment = f"  # review: {note}" if note else ""
        if isinstance(value, dict) and value and not isinstance(value, Flow):
            out.append(f"{pad}{_flow(key)}:{comment}")
            out += _lines(value, draft, here, depth + 1)
        else:
            out.append(f"{pad}{_flow(key)}: {_flow(value)}{comment}")
    return out


def render(draft: Draft) -> str:
    """The draft as `dataset.yaml` text, review notes as comments on the lines they concern."""
    header = [f"# {line}" for line in draft.header]
    return "\n".join([*header, *_lines(draft.spec, draft, (), 0)]) + "\n"
