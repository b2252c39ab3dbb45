"""The runtime knows no dataset: no module of app/ or jobs/ names a German credit column, table,
key, label or category. They live in datasets/german_credit/dataset.yaml (and in tests)."""

from __future__ import annotations

import ast
import re

from tests.utils import ROOT
from tests.utils.datasets import german

# The names `jobs.dataset infer` gives a drafted spine and label: conventions of any credit data,
# which the German spec happens to use too.
DRAFT_DEFAULTS = {
    "app/dataset/infer_sections.py": {"is_default", "application_id", "application_timestamp"}
}


def german_names() -> tuple[set[str], set[str]]:
    """(snake_case names, found as words anywhere; category codes that are not plain words,
    found as string literals). One-word names (job, housing, purpose) are plain English."""
    dataset = german()
    spec = dataset.spec
    names = {*spec.columns, *spec.sources.tables, *dataset.derived_names, dataset.label}
    names |= {dataset.entity_key, dataset.spine.key, dataset.spine.timestamp}
    names |= {spec.label.source, spec.entity.name}
    names |= {t.name for t in dataset.tables.values()}
    codes = {code for values in dataset.categories.values() for code in values}
    words = {n for n in names if "_" in n}
    return words, {c for c in codes if not c.isalpha()}


def sources():
    for folder in ("app", "jobs"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_module_of_app_or_jobs_names_the_german_data():
    words, strings = german_names()
    pattern = re.compile(r"\b(" + "|".join(sorted(words, key=len, reverse=True)) + r")\b")
    found = []
    for path in sources():
        text = path.read_text()
        where = path.relative_to(ROOT)
        allowed = DRAFT_DEFAULTS.get(where.as_posix(), set())
        found += [
            f"{where}: {m.group(0)}" for m in pattern.finditer(text) if m.group(0) not in allowed
        ]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and node.value in strings:
                found.append(f"{where}:{node.lineno}: {node.value!r}")
    assert not found, "German credit names in the runtime:\n" + "\n".join(found)
