"""The spec's `synthetic` section: a valid one loads, every mistake is reported with its path."""

from __future__ import annotations

import copy

import pytest

from app.dataset import load_dataset
from tests.unit.dataset.test_load import MINIMAL, broken, write


def _shift(change: dict) -> dict:
    """A synthetic section with one shift `s` of one change."""
    return {"shifts": {"s": {"changes": [change]}}}


def _replace(column: str, values: dict) -> dict:
    return _shift({"column": column, "replace": {"probability": 0.5, "values": values}})


def test_a_synthetic_section_loads_and_missing_codes_may_be_drawn(tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["synthetic"] = {
        "jitter": {"income": {"sigma": 0.1}, "late": {"offset": 2, "snap": True}},
        "shifts": {
            "worse": {
                "description": "more late payers, unknown incomes, a higher default rate",
                "changes": [
                    {"column": "late", "replace": {"probability": 0.3, "values": {3: 2, 4: 1}}},
                    {"column": "income", "replace": {"probability": 0.1, "values": {-1: 1}}},
                    {"column": "amount", "scale": {"factor": 1.5, "snap": True, "grid": 500}},
                    {"column": "bad", "label_rate": 0.3},
                ],
            }
        },
    }
    synthetic = load_dataset(write(tmp_path, data)).spec.synthetic
    assert list(synthetic.jitter) == ["income", "late"]
    assert synthetic.swap_probability == 0.05
    changes = synthetic.shifts["worse"].changes
    assert [c.column for c in changes] == ["late", "income", "amount", "bad"]


def test_no_synthetic_section_means_swaps_alone_and_no_shifts(tmp_path):
    synthetic = load_dataset(write(tmp_path, MINIMAL)).spec.synthetic
    assert (synthetic.jitter, synthetic.shifts, synthetic.swap_probability) == ({}, {}, 0.05)


@pytest.mark.parametrize(
    ("synthetic", "says"),
    [
        (
            {"jitter": {"region": {"sigma": 0.1}}},
            "synthetic.jitter.region: 'region' is not an int or float column",
        ),
        (
            {"jitter": {"debt": {"sigma": 0.1}}},
            "synthetic.jitter.debt: 'debt' is not a data column of a table",
        ),
        (
            {"jitter": {"late": {"sigma": 0.1, "offset": 1}}},
            "synthetic.jitter.late: give exactly one of `sigma` and `offset`",
        ),
        ({"jitter": {"late": {}}}, "synthetic.jitter.late: give exactly one of"),
        ({"swap_probability": 1.5}, "synthetic.swap_probability: Input should be less than"),
        ({"shifts": {"s": {"changes": []}}}, "synthetic.shifts.s.changes: List should have"),
        (
            _shift({"column": "debt", "scale": {"factor": 2}}),
            "synthetic.shifts.s.changes.0.column: 'debt' is not a data column of a table",
        ),
        (
            _shift({"column": "region", "scale": {"factor": 2}}),
            "synthetic.shifts.s.changes.0.scale: 'region' is not an int or float column",
        ),
        (
            _shift({"column": "region", "compress_toward": {"value": 1, "factor": 0.5}}),
            "synthetic.shifts.s.changes.0.compress_toward: 'region' is not an int or float",
        ),
        (
            _replace("region", {"w": 1}),
            "synthetic.shifts.s.changes.0.replace.values: 'w' is not a category of 'region'",
        ),
        (
            _replace("late", {31: 1}),
            "synthetic.shifts.s.changes.0.replace.values: 31 is not a valid int value of 'late'",
        ),
        (
            _replace("late", {2.5: 1}),
            "synthetic.shifts.s.changes.0.replace.values: 2.5 is not a valid int value of 'late'",
        ),
        (
            _shift({"column": "amount", "label_rate": 0.4}),
            "synthetic.shifts.s.changes.0.column: `label_rate` applies to the label 'bad'",
        ),
        (
            _shift({"column": "bad", "scale": {"factor": 2}}),
            "synthetic.shifts.s.changes.0: the label 'bad' changes only by `label_rate`",
        ),
        (
            _shift({"column": "late", "scale": {"factor": 2}, "label_rate": 0.4}),
            "synthetic.shifts.s.changes.0: give exactly one of `scale`, `replace`",
        ),
        (
            _shift({"column": "late", "scale": {"factor": 2, "grid": 6}}),
            "synthetic.shifts.s.changes.0.scale: `grid` needs `snap: true`",
        ),
        (
            _shift({"column": "late", "scale": {"factor": 2, "sigma": 0.1, "jitter": 1}}),
            "synthetic.shifts.s.changes.0.scale.jitter: not a known field",
        ),
    ],
)
def test_a_synthetic_mistake_is_reported_with_its_path(tmp_path, synthetic, says):
    assert says in broken(tmp_path, lambda d: d.update(synthetic=synthetic))


def test_a_grid_needs_a_range_to_end(tmp_path):
    def edit(d):
        d["columns"]["late"].pop("range")
        d["synthetic"] = _shift({"column": "late", "scale": {"factor": 2, "snap": True, "grid": 3}})

    assert "synthetic.shifts.s.changes.0.scale.grid: 'late' has no `range`" in broken(
        tmp_path, edit
    )
