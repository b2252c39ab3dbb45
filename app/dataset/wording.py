"""Reason wording: `{value|format}` templates a spec writes, compiled once to a formatter.

`Loan duration of {value|count:month}` gives "Loan duration of 1 month" / "of 24 months";
`{value|money}` gives "5,951 DM" in the spec's currency. Numbers are rounded half up, as an
applicant would round them (Python's round() and format() give 270 for 270.5).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

_FIELD = re.compile(r"\{([^{}]*)\}")
FORMATS = ("whole", "amount", "money", "percent", "decimal", "count")


class WordingError(ValueError):
    """A template that uses an unknown format or a malformed `{...}` field."""


def round_half_up(value: float, places: int = 0) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def whole(value: float) -> str:
    return f"{round_half_up(value):,}"


def amount(value: float) -> str:
    """5951 -> '5,951', 123.98 -> '124', 45.5 -> '45.5', 75.98 -> '76'."""
    tenths = round_half_up(value, 1)
    # Whole units for large amounts, and no "76.0" when a small one rounds to a whole number.
    if abs(value) >= 100 or tenths == tenths.to_integral_value():
        return whole(value)
    return f"{tenths:,}"


def count(value: float, one: str, many: str) -> str:
    number = round_half_up(value)
    return f"{number:,} {one if number == 1 else many}"


def _format(spec: str, currency: str, template: str) -> Callable[[float], str]:
    name, *args = spec.split(":")
    if name == "whole" and not args:
        return whole
    if name == "amount" and not args:
        return amount
    if name == "money" and not args:
        return lambda v: f"{amount(v)} {currency}"
    if name == "percent" and not args:
        return lambda v: f"{round_half_up(v * 100, 1).normalize():f}%"
    if name == "decimal" and len(args) <= 1 and all(a.isdigit() for a in args):
        places = int(args[0]) if args else 2
        return lambda v: f"{round_half_up(v, places):,}"
    if name == "count" and len(args) in (1, 2) and all(args):
        one, many = args[0], args[1] if len(args) == 2 else args[0] + "s"
        return lambda v: count(v, one, many)
    raise WordingError(
        f"{{value|{spec}}} in {template!r}: formats are whole, amount, money, percent, "
        "decimal[:places], count:<one>[:<many>]"
    )


def compile_template(template: str, currency: str) -> Callable[[float], str]:
    """The formatter of one template; every `{...}` field must be `value` or `value|format`."""
    parts: list[str | Callable[[float], str]] = []
    position = 0
    for match in _FIELD.finditer(template):
        parts.append(template[position : match.start()])
        field = match.group(1).strip()
        if field == "value":
            parts.append(whole)
        elif field.startswith("value|"):
            parts.append(_format(field[len("value|") :].strip(), currency, template))
        else:
            raise WordingError(f"{{{field}}} in {template!r}: write {{value}} or {{value|format}}")
        position = match.end()
    tail = template[position:]
    if "{" in tail or "}" in tail or any("{" in p or "}" in p for p in parts if isinstance(p, str)):
        raise WordingError(f"unbalanced braces in {template!r}")
    parts.append(tail)

    def render(value: float) -> str:
        return "".join(p if isinstance(p, str) else p(value) for p in parts)

    return render
