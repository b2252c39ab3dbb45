"""Column names for a drafted spec: the words of a source name, the snake_case name the spec
accepts, and the subject a reason's wording uses. Part of drafting (app.dataset.infer)."""

from __future__ import annotations

import re
import unicodedata

# The spec's names are at most 63 characters (app.dataset.types.CANONICAL).
MAX_NAME = 63


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def words(source: str) -> list[str]:
    """The words of a column name: `NumberOfTime30-59DaysPastDueNotWorse` -> Number, Of,
    Time, 30-59, Days, ...; `HTTPStatus_code` -> HTTP, Status, code."""
    text = _ascii(source)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)  # acronym, then a word
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    text = re.sub(r"([0-9])([A-Za-z])", r"\1 \2", text)
    text = re.sub(r"([A-Za-z])([0-9])", r"\1 \2", text)
    # A hyphen between digits is a span (30-59): one word; any other separator splits.
    text = re.sub(r"(?<=[0-9])-(?=[0-9])", "\0", text)
    parts = re.split(r"[^A-Za-z0-9\0]+", text)
    return [p.replace("\0", "-") for p in parts if p]


def name_words(source: str) -> set[str]:
    """The lower-cased words of a column name, for matching hints (`income`, `ratio`, ...)."""
    return {w.lower() for w in words(source)}


def canonical_name(source: str) -> str:
    """A snake_case name the spec accepts: CamelCase, hyphens and spaces become `_`, a digit
    stays with the word before it (`Time30-59Days` -> `time30_59_days`)."""
    text = _ascii(source)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    text = re.sub(r"_+", "_", text)
    if not text:
        text = "column"
    if not text[0].isalpha():
        text = f"c_{text}"
    return text[:MAX_NAME].rstrip("_")


def subject_of(source: str) -> str:
    """Reason wording's subject from a column name: `DebtRatio` -> "debt ratio"."""
    shown = [w if w.isupper() and len(w) > 1 else w.lower() for w in words(source)]
    return " ".join(shown) or source


class Names:
    """Canonical names, unique among themselves and the names the draft adds (keys,
    timestamps, the label)."""

    def __init__(self, reserved: set[str]) -> None:
        self.taken = set(reserved)

    def take(self, source: str) -> str:
        base = canonical_name(source)
        name, n = base, 2
        while name in self.taken:
            suffix = f"_{n}"
            name, n = base[: MAX_NAME - len(suffix)] + suffix, n + 1
        self.taken.add(name)
        return name
