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

from app.dataset.checks import check
from app.dataset.dataset import Dataset
from app.dataset.spec import DatasetSpec
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
        message = "not a known field" + RETIRED.get(loc, "")
    return loc, message


# Fields earlier specs had, with what replaced them.
RETIRED = {
    "fairness.gate": " (every grouping is screened now; one that must not be says `screen: false`)"
}


def _report(where: str, problems: list[tuple[str, str]]) -> str:
    lines = [f"  {loc or '(top)'}: {message}" for loc, message in problems[:_MAX_SHOWN]]
    more = len(problems) - _MAX_SHOWN
    if more > 0:
        lines.append(f"  ... and {more} more")
    noun = "problem" if len(problems) == 1 else "problems"
    return f"{where}: {len(problems)} {noun} in the dataset spec:\n" + "\n".join(lines)
