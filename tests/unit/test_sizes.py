"""Small units: no module of app/ or jobs/ over MAX_MODULE_LINES and no function over
MAX_FUNCTION_LINES, so each one can be read in one sitting. The failure lists the offenders,
largest first."""

from __future__ import annotations

import ast

from tests.utils import ROOT

MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
PACKAGES = ("app", "jobs")


def sources():
    for package in PACKAGES:
        # Not the generated gRPC stubs (scripts/gen_grpc.sh).
        yield from sorted(p for p in (ROOT / package).rglob("*.py") if "_pb2" not in p.name)


def test_no_module_is_over_the_limit():
    sizes = {p.relative_to(ROOT): len(p.read_text().splitlines()) for p in sources()}
    over = sorted(((n, str(p)) for p, n in sizes.items() if n > MAX_MODULE_LINES), reverse=True)
    assert not over, f"modules over {MAX_MODULE_LINES} lines: {over}"


def test_no_function_is_over_the_limit():
    over = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    over.append((lines, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: {sorted(over, reverse=True)}"
