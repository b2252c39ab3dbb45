"""The import layers of pyproject.toml's [tool.importlinter] hold, and the contract itself can
fail: a module importing upward (even inside a function) is reported."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.utils import ROOT


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    binary = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(binary), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120
    )


def test_layers_only_point_down():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_upward_import_inside_a_function_breaks_the_contract(tmp_path):
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy)
    for package in ("app", "jobs", "benchmarks"):
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / package, copy / package, ignore=skip)
    schema = copy / "app" / "data" / "schema.py"
    late = "\n\ndef _late():\n    from app.serving import routing\n\n    return routing\n"
    schema.write_text(schema.read_text() + late)
    result = lint_imports(copy)
    assert result.returncode != 0
    assert "app.data.schema -> app.serving.routing" in result.stdout
