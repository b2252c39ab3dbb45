"""Derived-feature expressions: arithmetic as numpy, missing for x/0, nothing but the language."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.dataset.expressions import ExpressionError, compile_expression

KNOWN = frozenset({"amount", "months", "rate", "age"})


def run(text: str, **arrays) -> np.ndarray:
    values = {k: np.asarray(v, dtype="float64") for k, v in arrays.items()}
    return compile_expression(text, KNOWN)(values)


def test_arithmetic_follows_python_precedence():
    out = run("amount / months * rate / 4 + 1", amount=[1200.0], months=[12.0], rate=[2.0])
    assert out.tolist() == [51.0]
    assert run("-amount ** 2", amount=[3.0]).tolist() == [-9.0]


def test_division_by_zero_and_infinities_become_missing():
    out = run("amount / months", amount=[1.0, 0.0, 5.0, np.nan], months=[0.0, 0.0, 2.0, 1.0])
    assert np.isnan(out[[0, 1, 3]]).all()
    assert out[2] == 2.5
    assert np.isnan(run("log(amount)", amount=[0.0])).all()


def test_functions_and_comparisons():
    out = run(
        "where(months > 12, max(amount, rate), min(amount, rate))",
        amount=[5, 5],
        months=[24, 6],
        rate=[7, 7],
    )
    assert out.tolist() == [7.0, 5.0]
    assert run("clip(amount, 0, 10)", amount=[-3, 30]).tolist() == [0.0, 10.0]
    assert run("where(isnan(age), 0, age)", age=[np.nan, 40]).tolist() == [0.0, 40.0]
    assert run("(amount > 1) & (amount < 3)", amount=[0, 2, 4]).tolist() == [0.0, 1.0, 0.0]


def test_inputs_are_the_columns_read_in_order():
    expression = compile_expression("amount / months + amount / age", KNOWN)
    assert expression.inputs == ("amount", "months", "age")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("amount.real", "not allowed"),
        ("__import__('os')", "not a function"),
        ("amount[0]", "not allowed"),
        ("open", "not a column"),
        ("income / months", "'income'"),
        ("max(amount)", "takes 2 argument"),
        ("lambda: 1", "not allowed"),
        ("'text'", "not allowed"),
        ("amount /", "not an expression"),
        ("1 < amount < 3", "not allowed"),
    ],
)
def test_anything_else_is_refused_with_what_and_where(text, says):
    with pytest.raises(ExpressionError, match=says):
        compile_expression(text, KNOWN)


@given(
    st.lists(st.floats(1, 1e6), min_size=1, max_size=20),
    st.floats(1, 120),
)
def test_agrees_with_numpy_bit_for_bit(amounts, months):
    a = np.asarray(amounts)
    m = np.full(a.shape, months)
    out = run("amount / months * rate / 4", amount=a, months=m, rate=np.full(a.shape, 3.0))
    assert np.array_equal(out, a / m * 3.0 / 4.0)
