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
    validation = copy / "app" / "data" / "validation.py"
    late = "\n\ndef _late():\n    from app.serving import routing\n\n    return routing\n"
    validation.write_text(validation.read_text() + late)
    result = lint_imports(copy)
    assert result.returncode != 0
    assert "app.data.validation -> app.serving.routing" in result.stdout


def _import_cycles(packages: tuple[str, ...]) -> list[list[str]]:
    """Groups of modules that import each other in a ring (strongly connected components of
    the module import graph, inside-function imports counted)."""
    import grimp

    graph = grimp.build_graph(*packages, include_external_packages=False, cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) & graph.modules for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            ring = []
            while not ring or ring[-1] != module:
                ring.append(stack.pop())
            if len(ring) > 1:
                cycles.append(sorted(ring))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_two_modules_import_each_other():
    assert _import_cycles(("app", "jobs")) == []


def test_the_cycle_check_finds_a_ring(tmp_path, monkeypatch):
    package = tmp_path / "ringpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from ringpkg import b\n")
    (package / "b.py").write_text("from ringpkg import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _import_cycles(("ringpkg",)) == [["ringpkg.a", "ringpkg.b"]]
