"""What the monitoring tests share: decision records, a stand-in Jobs API, drift results and
labelled prediction logs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from app.monitoring.drift import DriftResult
from app.monitoring.monitor import DriftMonitor
from app.monitoring.outcomes import join_outcomes
from app.training.reference import Reference


def records(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "request_id": f"r{start + i}",
            "logged_at": datetime(2026, 11, 26, tzinfo=UTC),
            "applicant_id": f"S{start + i:07d}",
            "shadow": False,
            "model_version": "1",
            "probability_of_default": 0.1,
            "credit_amount": 1000.0 + i,
            "purpose": "radio/television",
        }
        for i in range(n)
    ]


class Jobs:
    """Records submissions; `state` is what the Jobs API would report for every job."""

    def __init__(self, settings) -> None:
        self.submitted: list[str] = []
        self.state = "RUNNING"

    def submit(self, reason: str) -> str:
        self.submitted.append(reason)
        return f"job-{len(self.submitted)}"

    def status(self, job_id: str) -> str:
        return self.state


def monitor(settings, **kwargs) -> DriftMonitor:
    return DriftMonitor(settings, jobs_factory=Jobs, start=False, **kwargs)


def result(drift: bool) -> DriftResult:
    return DriftResult(
        checked_at="2026-11-26T00:00:00+00:00",
        rows=500,
        rows_used=500,
        reference_rows=600,
        dataset_drift=drift,
        drifted_features=["credit_amount"] if drift else [],
        drift_share=0.05 if drift else 0.0,
        features=[],
        prediction=None,
    )


REFERENCE = Reference(pd.DataFrame(), [], [], "1", "run")


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.count += n


def decision(
    request_id: str,
    applicant_id: str,
    logged_at: str,
    pd_score: float,
    variant: str = "champion",
    shadow: bool = False,
    version: str = "1",
) -> dict[str, Any]:
    """One prediction-log row; the decision follows a 0.5 threshold, as serving's would."""
    return {
        "request_id": request_id,
        "logged_at": pd.Timestamp(logged_at, tz="UTC"),
        "applicant_id": applicant_id,
        "variant": variant,
        "shadow": shadow,
        "model_name": "credit_risk",
        "model_version": version,
        "probability_of_default": pd_score,
        "decision": "decline" if pd_score >= 0.5 else "approve",
        "reasons": "[]",
        "features_as_of": None,
        "credit_amount": 1000.0,
    }


def log_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


# Hand-checked case: defaulters score 0.8, 0.6, 0.3 and non-defaulters 0.7, 0.2, 0.1.
# AUC: of the 9 (defaulter, non-defaulter) pairs the defaulter scores higher in 3 + 2 + 2 = 7.
# KS: at cut-off 0.3, TPR = 3/3 and FPR = 1/3 (only 0.7), the largest gap, 2/3.
KNOWN_BAD = (0.8, 0.6, 0.3)
KNOWN_GOOD = (0.7, 0.2, 0.1)


def known_case() -> pd.DataFrame:
    rows = [decision(f"b{i}", f"B{i}", "2024-01-02T12:00", s) for i, s in enumerate(KNOWN_BAD)] + [
        decision(f"g{i}", f"G{i}", "2024-01-03T12:00", s) for i, s in enumerate(KNOWN_GOOD)
    ]
    labels = pd.DataFrame(
        {
            "request_id": [r["request_id"] for r in rows],
            "applicant_id": [r["applicant_id"] for r in rows],
            "defaulted": [1, 1, 1, 0, 0, 0],
        }
    )
    return join_outcomes(log_frame(rows), labels, "applicant_id")
