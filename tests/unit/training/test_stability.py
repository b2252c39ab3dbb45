"""PSI and CSI on frozen bins: golden values, the bins a reference freezes, and their record."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from app.training.stability import (
    EMPTY_SHARE,
    MISSING,
    OTHER,
    Bins,
    band,
    categorical_bins,
    frozen_bins,
    numeric_bins,
    psi,
    stability,
)


def exact_psi(expected, actual):
    return sum((a - e) * math.log(a / e) for e, a in zip(expected, actual, strict=True))


def reference():
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "score": rng.uniform(0, 1, 2_000),
            "amount": rng.lognormal(8, 1, 2_000).round(),
            "purpose": rng.choice(["car", "tv", "education"], 2_000),
        }
    )


def test_identical_distributions_give_zero_for_score_numbers_and_categories():
    frame = reference()
    bins = frozen_bins(frame, "score", ["amount"], ["purpose"])
    found = stability(bins, frame)
    assert {c: f["psi"] for c, f in found.items()} == {"score": 0.0, "amount": 0.0, "purpose": 0.0}
    assert {f["band"] for f in found.values()} == {"stable"}


def test_a_constructed_shift_in_categories_gives_its_analytical_psi():
    bins = categorical_bins("grade", pd.Series(list("ABCD") * 100))
    window = pd.Series(["A"] * 10 + ["B"] * 20 + ["C"] * 30 + ["D"] * 40)
    found = stability({"grade": bins}, window.to_frame("grade"))["grade"]
    want = exact_psi([0.25] * 4, [0.1, 0.2, 0.3, 0.4])  # OTHER and MISSING: empty on both sides
    assert abs(found["psi"] - want) < 1e-9
    assert found["band"] == "watch" and 0.10 < want < 0.25  # 0.228
    assert found["bins"] == ["A", "B", "C", "D", OTHER, MISSING]


def test_deciles_are_frozen_from_the_reference_and_a_shift_to_one_decile_is_exact():
    bins = numeric_bins("amount", pd.Series(np.arange(1, 1001, dtype="float64")))
    assert bins.expected == pytest.approx((0.1,) * 10 + (0.0,), abs=1e-15)
    window = pd.DataFrame({"amount": np.arange(951, 1001, dtype="float64")})  # top decile only
    found = stability({"amount": bins}, window)["amount"]
    want = exact_psi([0.1] * 9 + [0.1], [EMPTY_SHARE] * 9 + [1.0])
    assert abs(found["psi"] - want) < 1e-9
    assert found["actual"][-2:] == [1.0, 0.0]


def test_missing_values_and_new_categories_count_as_a_shift_in_bins_of_their_own():
    purpose = categorical_bins("purpose", pd.Series(["car", "tv"] * 50))
    window = pd.DataFrame({"purpose": ["car", "tv", "boat", None]})
    found = stability({"purpose": purpose}, window)["purpose"]
    assert found["actual"] == [0.25, 0.25, 0.25, 0.25]
    want = exact_psi([0.5, 0.5, EMPTY_SHARE, EMPTY_SHARE], [0.25] * 4)
    assert abs(found["psi"] - want) < 1e-9
    amount = numeric_bins("amount", pd.Series([1.0, 2.0, 3.0, 4.0]))
    assert amount.index(pd.Series([np.nan, 0.5, 99.0])).tolist() == [len(amount.expected) - 1, 0, 3]


def test_sampled_rows_count_for_the_traffic_they_stand_for():
    bins = categorical_bins("purpose", pd.Series(["car", "tv"] * 50))
    window = pd.DataFrame({"purpose": ["car", "tv"]})
    found = stability({"purpose": bins}, window, weights=np.array([3.0, 1.0]))["purpose"]
    assert found["actual"][:2] == [0.75, 0.25]


def test_frozen_bins_survive_their_json_record():
    bins = frozen_bins(reference(), "score", ["amount"], ["purpose"])
    for grid in bins.values():
        assert Bins.from_dict(grid.to_dict()) == grid
    assert len(bins["score"].expected) == 11  # ten deciles and the missing bin


def test_the_bands_credit_teams_read():
    assert [band(v) for v in (0.0, 0.0999, 0.10, 0.2499, 0.25, 3.0)] == [
        "stable",
        "stable",
        "watch",
        "watch",
        "act",
        "act",
    ]
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
