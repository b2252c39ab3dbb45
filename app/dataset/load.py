"""Read a `dataset.yaml`, check it as a whole, and say exactly where it is wrong.

Every error names the file, the path inside it (`columns.age.range`) and what is wrong, so a
spec drafted by `jobs.dataset infer` can be fixed without reading this code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app.dataset.dataset import Dataset
from app.dataset.expressions import ExpressionError
from app.dataset.spec import DatasetSpec
from app.dataset.wording import WordingError, compile_template
from app.errors import DatasetSpecError

SPEC_FILE = "dataset.yaml"
_MAX_SHOWN = 12


def spec_path(path: Path) -> Path:
    """The spec file itself: `path`, or `path/dataset.yaml` for a directory."""
    path = Path(path).expanduser()
    return path / SPEC_FILE if path.is_dir() else path


def load_dataset(path: Path) -> Dataset:
    """The dataset of a spec file or directory; parsed once per file version."""
    file = spec_path(path).resolve()
    try:
        stat = file.stat()
    except OSError:
        raise DatasetSpecError(
            f"dataset spec not found: {file} (CREDIT_DATASET names a dataset.yaml or a "
            "directory holding one)"
        ) from None
    return _load(file, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _load(file: Path, mtime_ns: int, size: int) -> Dataset:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetSpecError(f"{file}: cannot read: {exc}") from None
    return parse_dataset(text, str(file), file.parent)


def parse_dataset(text: str, where: str, directory: Path) -> Dataset:
    """A dataset from spec text; `where` names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise DatasetSpecError(f"{where}: {at}not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise DatasetSpecError(f"{where}: expected a mapping of sections, got {_kind(data)}")
    try:
        spec = DatasetSpec.parse(data)
    except ValidationError as exc:
        raise DatasetSpecError(_report(where, [_pydantic(e) for e in exc.errors()])) from None
    dataset = Dataset(spec=spec, directory=directory)
    problems = check(dataset)
    if problems:
        raise DatasetSpecError(_report(where, problems))
    return dataset


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _pydantic(error: dict) -> tuple[str, str]:
    loc = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-after"))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "not a known field"
    return loc, message


def _report(where: str, problems: list[tuple[str, str]]) -> str:
    lines = [f"  {loc or '(top)'}: {message}" for loc, message in problems[:_MAX_SHOWN]]
    more = len(problems) - _MAX_SHOWN
    if more > 0:
        lines.append(f"  ... and {more} more")
    noun = "problem" if len(problems) == 1 else "problems"
    return f"{where}: {len(problems)} {noun} in the dataset spec:\n" + "\n".join(lines)


def check(dataset: Dataset) -> list[tuple[str, str]]:
    """What is wrong between sections (each section's own shape is already checked)."""
    problems: list[tuple[str, str]] = []
    problems += _check_tables(dataset)
    if problems:  # the rest reads the tables
        return problems
    problems += _check_features(dataset)
    if not problems:
        problems += _check_reasons(dataset)
    return problems


def _check_tables(dataset: Dataset) -> list[tuple[str, str]]:
    spec = dataset.spec
    problems: list[tuple[str, str]] = []
    tables = spec.sources.tables
    spines = [n for n, t in tables.items() if t.role == "spine"]
    if len(spines) != 1:
        problems.append(("sources.tables", f"needs exactly one `role: spine` table, has {spines}"))
    owner: dict[str, str] = {}
    for name, table in tables.items():
        for i, column in enumerate(table.columns):
            where = f"sources.tables.{name}.columns.{i}"
            if column not in spec.columns and column != spec.label.name:
                problems.append((where, f"{column!r} is not declared under `columns`"))
            elif column in owner:
                problems.append((where, f"{column!r} is already in table {owner[column]!r}"))
            owner[column] = name
    for column in spec.columns:
        if column not in owner and spec.columns[column].type not in ("string", "timestamp"):
            problems.append((f"columns.{column}", "is in no table under `sources.tables`"))
    if spines and spec.label.name not in tables[spines[0]].columns:
        problems.append(("label.name", f"{spec.label.name!r} must be a column of the spine"))
    if spec.label.name in spec.columns:
        problems.append(("label.name", "is declared by `label`, not under `columns`"))
    flat = spec.sources.flat_file
    for table in flat.lag_days if flat else ():
        if table not in tables or tables[table].role != "features":
            problems.append((f"sources.flat_file.lag_days.{table}", "is not a feature table"))
    return problems


def _check_features(dataset: Dataset) -> list[tuple[str, str]]:
    spec = dataset.spec
    problems: list[tuple[str, str]] = []
    spine = dataset.spine
    for i, column in enumerate(spec.features.request):
        where = f"features.request.{i}"
        if column not in spine.feature_columns or column in (spec.label.name, spec.entity.key):
            problems.append((where, f"{column!r} is not a data column of the spine table"))
        elif spec.columns[column].protected:
            problems.append((where, f"{column!r} is protected and cannot be a model input"))
    for i, column in enumerate(spec.features.exclude):
        if column not in spec.columns and column not in dataset.derived_names:
            problems.append((f"features.exclude.{i}", f"{column!r} is not a column"))
    seen = set(spec.columns) | {spec.label.name}
    for i, feature in enumerate(spec.features.derived):
        where = f"features.derived.{i}"
        if feature.name in seen:
            problems.append((f"{where}.name", f"{feature.name!r} is already a column"))
        seen.add(feature.name)
    if not problems:
        try:
            dataset.derived  # noqa: B018 - compiles every expression
        except ExpressionError as exc:
            return [("features.derived", str(exc))]
        protected = [c for c in dataset.derived_inputs if spec.columns[c].protected]
        if protected:
            problems.append(("features.derived", f"reads protected column(s) {protected}"))
        if spec.label.name in dataset.derived_inputs:
            problems.append(("features.derived", "reads the label, unknown at decision time"))
    return problems


def _check_reasons(dataset: Dataset) -> list[tuple[str, str]]:
    spec = dataset.spec
    codes = spec.reasons.codes
    problems: list[tuple[str, str]] = []
    for column in dataset.model_columns:
        if column not in codes:
            problems.append(("reasons.codes", f"{column!r} is a model input without a reason"))
    by_code: dict[str, str] = {}
    for column, reason in codes.items():
        where = f"reasons.codes.{column}"
        if column not in dataset.model_columns:
            why = "protected" if column in dataset.protected_columns else "not a model input"
            problems.append((where, f"{column!r} is {why}: it may not be given as a reason"))
        if reason.code in by_code:
            problems.append((f"{where}.code", f"{reason.code} is also {by_code[reason.code]!r}"))
        if reason.code in spec.reasons.retired:
            problems.append((f"{where}.code", f"{reason.code} is retired: take an unused code"))
        by_code[reason.code] = column
        numeric = column in dataset.derived_names or spec.columns[column].type in ("int", "float")
        if numeric and reason.text is None:
            problems.append((f"{where}.text", "a numeric column needs its wording"))
        for key, template in [("text", reason.text), *reason.text_from.items()]:
            try:
                if template is not None:
                    compile_template(template, spec.currency)
            except WordingError as exc:
                path = "text" if key == "text" else f"text_from.{key:g}"
                problems.append((f"{where}.{path}", str(exc)))
    return problems
