"""What the monitor keeps of a decision, and the share of traffic a window stands for."""

from __future__ import annotations

import pandas as pd

from app.domain import PREDICTION
from app.monitoring.window import (
    SAMPLE_RATE,
    window_sample_rate,
    window_schema,
    window_stability,
)
from app.predictions.schema import schema_for
from app.training.reference import Reference
from app.training.stability import frozen_bins
from tests.utils.datasets import german


def test_a_window_row_is_time_version_pd_and_features_with_its_rate():
    names = window_schema(german()).names
    # The decision as answered: live approval rates per group (fair lending).
    assert names[:5] == ["request_id", "logged_at", "model_version", PREDICTION, "decision"]
    assert names[-1] == SAMPLE_RATE
    assert not {"applicant_id", "variant", "shadow", "reasons"} & set(names)
    # Who asked stays in the prediction log: never in the monitor's spool on disk.
    assert not {"caller", "caller_subject", "idempotency_key"} & set(names)
    assert set(names[5:-1]) <= set(schema_for(german()).names)


def test_an_unsampled_or_empty_window_stands_for_itself():
    assert window_sample_rate(pd.DataFrame({SAMPLE_RATE: [None, 1.0]})) == 1.0
    assert window_sample_rate(pd.DataFrame({SAMPLE_RATE: []})) == 1.0


def reference_of(frame: pd.DataFrame) -> Reference:
    bins = frozen_bins(frame, PREDICTION, ["amount"], ["purpose"])
    return Reference(frame, ["amount"], ["purpose"], "1", "run", bins)


def test_a_check_reports_psi_of_the_score_and_csi_per_column_on_the_frozen_bins():
    frame = pd.DataFrame(
        {
            PREDICTION: [0.1, 0.2, 0.3, 0.4] * 25,
            "amount": [1000, 2000, 3000, 4000] * 25,
            "purpose": ["car", "tv"] * 50,
        }
    )
    same = window_stability(frame.assign(**{SAMPLE_RATE: 1.0}), reference_of(frame))
    assert {c: f["psi"] for c, f in same.items()} == {
        PREDICTION: 0.0,
        "amount": 0.0,
        "purpose": 0.0,
    }
    # Half the traffic sampled away at rate 0.5 on cars: each kept car stands for two.
    shifted = frame.assign(**{SAMPLE_RATE: [0.5, 1.0] * 50})
    found = window_stability(shifted, reference_of(frame))["purpose"]
    assert found["actual"][:2] == [2 / 3, 1 / 3] and found["band"] == "watch"


def test_a_window_reports_approvals_per_group_and_breaches_only_on_screened_groupings():
    from app.dataset.policy import Grouping
    from app.monitoring.drift import DriftConfig
    from app.monitoring.window import window_fairness
    from app.training.fair_lending import Screen

    # Over 26s approved 160 of 200, the young 40 of 200 (a ratio of 0.25); one row spooled
    # before decisions were kept counts nowhere.
    ages = [30] * 200 + [20] * 200 + [40]
    decisions = ["approve"] * 160 + ["decline"] * 40 + ["approve"] * 40 + ["decline"] * 160
    window = pd.DataFrame({PREDICTION: [0.1] * 401, "age": ages, "decision": [*decisions, None]})
    bands = {"age_band": Grouping(column="age", edges=[18, 26]), "sex": Grouping(column="sex")}
    screened = DriftConfig(groupings=bands, screen=Screen(0.8, 0.05, ("age_band",)))
    result = window_fairness(window, screened)
    assert list(result) == ["age_band"]  # no `sex` column in the window: not reported
    young, older = result["age_band"]
    assert (young["group"], young["n"], young["approvals"]) == ("18-25", 200, 40)
    assert young["approval_rate_ratio"] == 0.25 and young["screened"] and young["breach"]
    assert older["approval_rate_ratio"] == 1.0 and not older["breach"]
    # The same window with age unscreened: reported, never a breach.
    unscreened = DriftConfig(groupings=bands, screen=Screen(0.8, 0.05, ("sex",)))
    (young, _) = window_fairness(window, unscreened)["age_band"]
    assert young["approval_rate_ratio"] == 0.25 and not young["screened"] and not young["breach"]
