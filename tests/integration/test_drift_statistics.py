"""Drift statistics on the synthetic generator: false alarms stay rare, named shifts are caught.

Real Evidently, no Ray. The reference is 1,200 rows (the training split of the serving tests'
2,000 applicants), live windows are the monitor's default check size, 1,000 rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.config import SHIPPED_DATA_PATH
from app.data.synthetic import generate_raw, shifted_columns
from app.data.warehouse import load_raw
from app.domain import PREDICTION
from app.monitoring.drift import DriftConfig, DriftInputError, compute_drift
from app.training.preprocess import FeatureEncoder
from tests.utils.datasets import german

pytestmark = pytest.mark.integration

REFERENCE_ROWS = 1200
WINDOW = 1000
ENCODER = FeatureEncoder.for_dataset(german())
NUMERIC, CATEGORICAL = list(ENCODER.numeric), list(ENCODER.categorical)
# Named shifts of the applicants' features; `higher_default_rate` moves only the label and is
# what performance monitoring (outcomes) is for, not feature drift.
LABEL = german().spec.label.source
FEATURE_SHIFTS = [
    s for s in german().spec.synthetic.shifts if shifted_columns(german(), s) != (LABEL,)
]


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return load_raw(SHIPPED_DATA_PATH, german())


def features(real: pd.DataFrame, n: int, seed: int, shift: str | None = None) -> pd.DataFrame:
    raw = generate_raw(real, n, seed, shift, dataset=german())
    frame = pd.concat([raw, german().derive_frame(raw)], axis=1)
    # A fixed score standing in for the model's PD: rises with amount and duration, so it
    # moves when they do, as a credit model's would.
    z = 0.0002 * frame["credit_amount"] + 0.03 * frame["duration_in_month"] - 2.5
    frame[PREDICTION] = 1 / (1 + np.exp(-z))
    return frame


@pytest.fixture(scope="module")
def reference(real) -> pd.DataFrame:
    return features(real, REFERENCE_ROWS, seed=7)


def test_traffic_like_the_reference_never_alarms(real, reference):
    flagged = []
    for k in range(20):
        result, _ = compute_drift(reference, features(real, WINDOW, 1000 + k), NUMERIC, CATEGORICAL)
        assert result.rows == WINDOW and len(result.features) == len(NUMERIC + CATEGORICAL)
        if result.dataset_drift:
            flagged.append((k, result.drifted_features))
    # Seeded windows: the README's figure (0 of 20 flagged) is exactly what this measures.
    assert flagged == [], f"false alarms in {len(flagged)} of 20 checks: {flagged}"


@pytest.mark.parametrize("shift", FEATURE_SHIFTS)
def test_a_named_shift_is_caught_in_the_first_check_and_named(real, reference, shift):
    expected = set(shifted_columns(german(), shift))
    window = features(real, WINDOW, 2000, shift)
    result, _ = compute_drift(reference, window, NUMERIC, CATEGORICAL)
    assert result.dataset_drift, f"{shift} not flagged in the first check"
    assert expected <= set(result.drifted_features), (shift, result.drifted_features)
    by_column = {f.column: f for f in result.features}
    assert all(by_column[c].score >= by_column[c].threshold for c in expected)


def test_pvalue_tests_alarm_on_unchanged_data_at_volume_where_distances_do_not(real, reference):
    # The reason for the default methods: chi-square / K-S flag unchanged columns once the
    # window is large, a distance does not.
    big = features(real, 20_000, 3000)
    pvalues = DriftConfig(
        num_method="ks",
        num_threshold=0.05,
        cat_method="chisquare",
        cat_threshold=0.05,
        discrete_levels=0,
    )
    with_tests, _ = compute_drift(reference, big, NUMERIC, CATEGORICAL, pvalues)
    ours, _ = compute_drift(reference, big, NUMERIC, CATEGORICAL)
    assert with_tests.drifted_features, "p-value tests stayed quiet on 20k rows"
    assert not ours.dataset_drift, ours.drifted_features


def test_large_windows_are_sampled_and_say_so(real, reference):
    result, _ = compute_drift(
        reference, features(real, 5000, 4000), NUMERIC, CATEGORICAL, DriftConfig(max_rows=2000)
    )
    assert (result.rows, result.rows_used, result.reference_rows) == (5000, 2000, REFERENCE_ROWS)


def test_missing_columns_and_empty_windows_are_named(reference):
    with pytest.raises(DriftInputError, match="current window lacks columns: purpose"):
        compute_drift(reference, reference.drop(columns=["purpose"]), NUMERIC, CATEGORICAL)
    with pytest.raises(DriftInputError, match="current window has no rows"):
        compute_drift(reference, reference.iloc[:0], NUMERIC, CATEGORICAL)
