"""Derived-feature expressions: a small whitelisted arithmetic language compiled once to numpy.

A spec writes `monthly_payment: amount / term_months`; the same compiled function then runs in
Feast's on-demand view, on training frames, on the request path and on the counter-offer grid,
so the four cannot disagree. Only arithmetic, comparisons and a few NaN-aware functions are
allowed: no attribute access, no indexing, no names other than columns. What an expression
cannot say is a registered function (`module:function` over a dict of arrays), imported from an
installed package: the spec is trusted configuration, as a Feast repo is.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

Arrays = Mapping[str, np.ndarray]
_Eval = Callable[[Arrays], np.ndarray]

_BINARY: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.Pow: np.power,
    ast.BitAnd: np.logical_and,
    ast.BitOr: np.logical_or,
}
_COMPARE: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}
# name -> (function, number of arguments)
_FUNCTIONS: dict[str, tuple[Callable[..., np.ndarray], int]] = {
    "min": (np.fmin, 2),
    "max": (np.fmax, 2),
    "where": (np.where, 3),
    "clip": (np.clip, 3),
    "abs": (np.abs, 1),
    "log": (np.log, 1),
    "log1p": (np.log1p, 1),
    "exp": (np.exp, 1),
    "sqrt": (np.sqrt, 1),
    "isnan": (np.isnan, 1),
}
_CONSTANTS = {"nan": np.nan, "inf": np.inf}
FUNCTION_NAMES = tuple(sorted(_FUNCTIONS))


class ExpressionError(ValueError):
    """An expression that is not in the language, or names something it may not."""


@dataclass(frozen=True)
class Expression:
    """A parsed expression: the columns it reads and its compiled evaluator."""

    text: str
    inputs: tuple[str, ...]
    evaluate: _Eval

    def __call__(self, arrays: Arrays) -> np.ndarray:
        """The values as float64, with every non-finite result (x/0, log(0)) as NaN."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            values = np.asarray(self.evaluate(arrays), dtype="float64")
        return np.where(np.isfinite(values), values, np.nan)


def compile_expression(text: str, known: set[str] | frozenset[str]) -> Expression:
    """Parse `text` and check that every name is a function or one of `known` columns."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{text!r} is not an expression: {exc.msg}") from None
    inputs: dict[str, None] = {}
    evaluate = _compile(tree.body, text, known, inputs)
    return Expression(text=text, inputs=tuple(inputs), evaluate=evaluate)


# A registered function, as a spec's `function` + `inputs` are written on one line.
_CALL = re.compile(r"^\s*([A-Za-z_][\w.]*):([A-Za-z_]\w*)\((.*)\)\s*$")


def compile_definition(text: str, known: set[str] | frozenset[str]) -> Expression:
    """A derived feature's definition: an expression, or `module:function(a, b)` (a function
    over a dict of float arrays; `:` is no part of the expression language, so the two cannot
    be mistaken)."""
    call = _CALL.match(text)
    return compile_function(*call.groups(), known) if call else compile_expression(text, known)


def compile_function(module: str, name: str, args: str, known) -> Expression:
    """`module:name` imported now (a spec naming a missing one fails at load, not at the first
    decision), called with the named input arrays."""
    text = f"{module}:{name}({args})"
    inputs = tuple(a.strip() for a in args.split(",") if a.strip())
    unknown = [c for c in inputs if c not in known]
    if not inputs or unknown:
        raise ExpressionError(f"{text!r} needs inputs that are columns defined before it")
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ExpressionError(f"{text!r}: cannot import {module}:{name} ({exc})") from None
    if not callable(function):
        raise ExpressionError(f"{text!r}: {module}:{name} is not a function")

    def evaluate(arrays: Arrays) -> np.ndarray:
        values = np.asarray(function({c: arrays[c] for c in inputs}), dtype="float64")
        rows = len(arrays[inputs[0]])
        if values.shape != (rows,):
            raise ExpressionError(f"{text!r} returned shape {values.shape} for {rows} rows")
        return values

    return Expression(text=text, inputs=inputs, evaluate=evaluate)


def _compile(node: ast.AST, text: str, known, inputs: dict[str, None]) -> _Eval:
    def sub(child: ast.AST) -> _Eval:
        return _compile(child, text, known, inputs)

    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = float(node.value)
        return lambda arrays: np.float64(value)
    if isinstance(node, ast.Name):
        return _name(node.id, text, known, inputs)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op, left, right = _BINARY[type(node.op)], sub(node.left), sub(node.right)
        return lambda arrays: op(left(arrays), right(arrays))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = sub(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        return lambda arrays: np.negative(operand(arrays))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        op, left, right = _COMPARE[type(node.ops[0])], sub(node.left), sub(node.comparators[0])
        return lambda arrays: op(left(arrays), right(arrays))
    if isinstance(node, ast.Call):
        return _call(node, text, sub)
    shown = ast.get_source_segment(text, node) or type(node).__name__
    raise ExpressionError(
        f"{shown!r} in {text!r} is not allowed: use numbers, column names, + - * / ** "
        f"< <= > >= == != & | and {', '.join(FUNCTION_NAMES)}"
    )


def _name(name: str, text: str, known, inputs: dict[str, None]) -> _Eval:
    if name in _CONSTANTS:
        value = _CONSTANTS[name]
        return lambda arrays: np.float64(value)
    if name not in known:
        raise ExpressionError(f"{text!r} names {name!r}, which is not a column defined before it")
    inputs[name] = None
    return lambda arrays: arrays[name]


def _call(node: ast.Call, text: str, sub: Callable[[ast.AST], _Eval]) -> _Eval:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name not in _FUNCTIONS or node.keywords:
        shown = ast.get_source_segment(text, node.func) or "?"
        raise ExpressionError(
            f"{shown!r} in {text!r} is not a function here; use {', '.join(FUNCTION_NAMES)}"
        )
    function, arity = _FUNCTIONS[name]
    if len(node.args) != arity:
        raise ExpressionError(f"{name}() in {text!r} takes {arity} argument(s)")
    args = [sub(a) for a in node.args]
    return lambda arrays: function(*(a(arrays) for a in args))


# (name, expression) pairs in definition order: a later feature may read an earlier one.
Definitions = tuple[tuple[str, str], ...]


@lru_cache(maxsize=64)
def compiled(definitions: Definitions, columns: frozenset[str]) -> tuple[Expression, ...]:
    """Each expression compiled once per set of available columns."""
    known = set(columns)
    out = []
    for name, text in definitions:
        out.append(compile_definition(text, frozenset(known)))
        known.add(name)
    return tuple(out)


def derive_frame(inputs: pd.DataFrame, definitions: Sequence[Sequence[str]]) -> pd.DataFrame:
    """The derived features of every row of `inputs`, float64 with NaN for missing, x/0 and
    infinities (the spec's rule). Columns in `definitions` order, index kept."""
    pairs: Definitions = tuple((str(name), str(text)) for name, text in definitions)
    expressions = compiled(pairs, frozenset(inputs.columns))
    arrays: dict[str, np.ndarray] = {}
    out: dict[str, np.ndarray] = {}
    for (name, _), expression in zip(pairs, expressions, strict=True):
        for column in expression.inputs:
            if column not in arrays:  # a stored column (earlier derived ones are there)
                arrays[column] = numbers(inputs[column])
        out[name] = arrays[name] = expression(arrays)
    return pd.DataFrame(out, index=inputs.index)


def as_floats(values: Sequence) -> np.ndarray:
    """Request values (None for missing) as the float64 array a derived feature reads: the one
    conversion of the request path and the counter-offer grid, so their derived values agree
    bit for bit."""
    return np.array([np.nan if v is None else v for v in values], dtype="float64")


def numbers(column: pd.Series) -> np.ndarray:
    """A column as float64, NaN for missing or non-numeric values."""
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
