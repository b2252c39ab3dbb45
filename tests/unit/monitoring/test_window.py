"""What the monitor keeps of a decision, and the share of traffic a window stands for."""

from __future__ import annotations

import pandas as pd

from app.domain import PREDICTION
from app.monitoring.window import SAMPLE_RATE, window_sample_rate, window_schema
from app.predictions.schema import schema_for
from tests.utils.datasets import german


def test_a_window_row_is_time_version_pd_and_features_with_its_rate():
    names = window_schema(german()).names
    assert names[:4] == ["request_id", "logged_at", "model_version", PREDICTION]
    assert names[-1] == SAMPLE_RATE
    assert not {"applicant_id", "variant", "shadow", "decision", "reasons"} & set(names)
    # Who asked stays in the prediction log: never in the monitor's spool on disk.
    assert not {"caller", "caller_subject", "idempotency_key"} & set(names)
    assert set(names[4:-1]) <= set(schema_for(german()).names)


def test_an_unsampled_or_empty_window_stands_for_itself():
    assert window_sample_rate(pd.DataFrame({SAMPLE_RATE: [None, 1.0]})) == 1.0
    assert window_sample_rate(pd.DataFrame({SAMPLE_RATE: []})) == 1.0
