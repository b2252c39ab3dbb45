"""The drift check's pure parts (Evidently itself runs in the integration tests): which columns
are compared how, the verdict, and the settings view."""

from __future__ import annotations

import pandas as pd
import pytest

from app.domain import PREDICTION
from app.monitoring.drift import (
    DriftConfig,
    DriftInputError,
    FeatureDrift,
    _columns,
    _to_result,
    drift_config,
)

FRAME = pd.DataFrame(
    {
        "amount": [float(i) for i in range(20)],
        "rate": [1.0, 2.0, 3.0, 4.0] * 5,  # four levels: compared as categories
        "purpose": ["car", "tv"] * 10,
        PREDICTION: [i / 20 for i in range(20)],
    }
)


def test_few_level_numbers_are_compared_as_categories_and_the_pd_as_a_number():
    columns = _columns(FRAME, FRAME, ["amount", "rate"], ["purpose"], DriftConfig(), PREDICTION)
    assert (columns.numeric, columns.discrete) == (["amount", PREDICTION], ["rate"])
    assert columns.order == ["amount", "rate", PREDICTION, "purpose"]
    assert columns.kinds() == {
        "amount": "numerical",
        PREDICTION: "numerical",
        "purpose": "categorical",
        "rate": "discrete",
    }


def test_the_pd_is_checked_only_when_both_frames_have_it():
    window = FRAME.drop(columns=PREDICTION)
    columns = _columns(FRAME, window, ["amount"], [], DriftConfig(), PREDICTION)
    assert columns.prediction is None and columns.order == ["amount"]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (FRAME.drop(columns="purpose"), "current window lacks columns: purpose"),
        (FRAME[:0], "no rows"),
    ],
)
def test_frames_that_cannot_be_compared_are_refused(window, message):
    with pytest.raises(DriftInputError, match=message):
        _columns(FRAME, window, ["amount"], ["purpose"], DriftConfig(), PREDICTION)


def test_a_drifted_pd_alone_is_dataset_drift():
    columns = _columns(FRAME, FRAME, ["amount"], [], DriftConfig(), PREDICTION)
    drifts = {
        c: FeatureDrift(c, "numerical", "wasserstein", 0.5, 0.15, drifted=c == PREDICTION)
        for c in columns.order
    }
    out = _to_result(drifts, columns, DriftConfig(), rows=30, rows_used=20, reference_rows=20)
    assert out.dataset_drift and out.drifted_features == [] and out.drift_share == 0.0
    assert [f.column for f in out.features] == ["amount"] and out.prediction.drifted


def test_the_drift_config_is_read_from_the_settings(make_settings):
    config = drift_config(make_settings(monitor_num_threshold=0.3, monitor_max_rows=500, seed=7))
    assert (config.num_threshold, config.max_rows, config.seed) == (0.3, 500, 7)


def test_a_large_reference_is_sampled_like_the_window():
    import numpy as np

    from app.monitoring.drift import DriftConfig, compute_drift

    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 5_000), PREDICTION: rng.random(5_000)})
    current = pd.DataFrame({"x": rng.normal(0, 1, 300), PREDICTION: rng.random(300)})
    config = DriftConfig(max_rows=1_000, seed=5)
    result, _ = compute_drift(reference, current, ["x"], [], config)
    assert result.reference_rows == 5_000
    # The same verdict and distances as on the seeded sample itself: the check saw 1,000 rows.
    sampled = reference.sample(n=1_000, random_state=5)
    same, _ = compute_drift(sampled, current, ["x"], [], config)
    assert [f.score for f in result.features] == [f.score for f in same.features]
    assert result.prediction.score == same.prediction.score
