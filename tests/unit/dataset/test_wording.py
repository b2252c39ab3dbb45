"""Reason-wording templates: each format renders as an applicant reads numbers."""

from __future__ import annotations

import pytest

from app.dataset.wording import WordingError, compile_template


@pytest.mark.parametrize(
    ("template", "value", "text"),
    [
        ("Credit amount of {value|money}", 5951, "Credit amount of 5,951 DM"),
        ("Installment of {value|money}", 75.98, "Installment of 76 DM"),
        ("Installment of {value|money}", 45.5, "Installment of 45.5 DM"),
        ("Installment of {value|money}", 270.5, "Installment of 271 DM"),
        ("Loan duration of {value|count:month}", 1, "Loan duration of 1 month"),
        ("Loan duration of {value|count:month}", 24, "Loan duration of 24 months"),
        ("{value|count:person:people} dependent", 2, "2 people dependent"),
        ("Level {value|whole} of 4", 2.5, "Level 3 of 4"),
        ("Utilization of {value|percent}", 0.4567, "Utilization of 45.7%"),
        ("Ratio {value|decimal:1}", 0.25, "Ratio 0.3"),
        ("Age {value}", 41, "Age 41"),
        ("No number", 3, "No number"),
    ],
)
def test_formats(template, value, text):
    assert compile_template(template, "DM")(value) == text


@pytest.mark.parametrize(
    "template", ["{value|euros}", "{amount}", "{value|count}", "unbalanced {value", "x }"]
)
def test_a_bad_template_is_refused_naming_it(template):
    with pytest.raises(WordingError, match=r"in '|unbalanced|write"):
        compile_template(template, "DM")
