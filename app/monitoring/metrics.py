"""The drift monitor's Prometheus metrics, through Ray's exporter (so: `ray_` prefixed when
scraped). Outside a Ray worker there are none (`DriftMetrics.create` returns None)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from app.domain import PREDICTION
from app.monitoring.drift import DriftResult

log = logging.getLogger(__name__)

# While idle, the latest result's gauges are set again this often (Ray drops stale gauges).
REPUBLISH_SECONDS = 10


@dataclass
class DriftMetrics:
    checks: Any
    detected: Any
    share: Any
    feature_score: Any
    pd_score: Any
    rows: Any
    dropped: Any
    failures: Any
    triggers: Any
    # Defaulted, so a DriftMetrics built from nine stand-ins (the unit tests) still works.
    workspace_failures: Any = None
    stability: Any = None
    impact_ratio: Any = None
    breach: Any = None
    republished: float = field(default_factory=time.monotonic)

    @classmethod
    def create(cls) -> DriftMetrics | None:
        import ray

        if not ray.is_initialized():
            return None
        from ray.util.metrics import Counter, Gauge

        return cls(
            checks=Counter("credit_drift_checks_total", "Drift checks run."),
            detected=Gauge("credit_drift_detected", "1 if the latest check found dataset drift."),
            share=Gauge("credit_drift_share", "Share of features drifted in the latest check."),
            feature_score=Gauge(
                "credit_drift_feature_score",
                "Latest drift score per feature (method per feature; see threshold).",
                tag_keys=("feature", "method"),
            ),
            pd_score=Gauge("credit_drift_prediction_score", "Latest drift score of the PD."),
            rows=Gauge("credit_drift_window_rows", "Rows in the latest check's window."),
            dropped=Counter("credit_drift_rows_dropped_total", "Rows dropped: buffer full."),
            failures=Counter("credit_drift_check_failures_total", "Checks that failed."),
            triggers=Counter("credit_drift_retrain_triggers_total", "Retraining jobs submitted."),
            workspace_failures=Counter(
                "credit_drift_workspace_failures_total",
                "Drift checks not added to the Evidently workspace (the check itself stands).",
            ),
            stability=Gauge(
                "credit_stability_index",
                "Latest PSI of the PD (index=psi) and CSI per characteristic (index=csi) on "
                "the champion's frozen bins; 0.10 watch, 0.25 act.",
                tag_keys=("column", "index"),
            ),
            impact_ratio=Gauge(
                "credit_adverse_impact_ratio",
                "Latest window's approval rate of each group over the most favoured group's, "
                "per fairness grouping the prediction log can be grouped by.",
                tag_keys=("grouping", "group", "screened"),
            ),
            breach=Gauge(
                "credit_fair_lending_breach",
                "1 if the group's ratio is below CREDIT_FAIR_LENDING_SCREEN with Fisher's p "
                "below CREDIT_FAIR_LENDING_ALPHA in the latest window (screened groupings).",
                tag_keys=("grouping", "group"),
            ),
        )

    def record(self, result: DriftResult) -> None:
        self.checks.inc()
        self.publish(result)

    def publish(self, result: DriftResult) -> None:
        """Set the gauges; repeated while idle, as Ray drops a gauge nobody sets for a while."""
        self.detected.set(float(result.dataset_drift))
        self.share.set(result.drift_share)
        self.rows.set(result.rows)
        for feature in result.features:
            self.feature_score.set(
                feature.score, tags={"feature": feature.column, "method": feature.method}
            )
        if result.prediction:
            self.pd_score.set(result.prediction.score)
        for column, figures in result.stability.items() if self.stability else ():
            index = "psi" if column == PREDICTION else "csi"
            self.stability.set(figures["psi"], tags={"column": column, "index": index})
        if self.impact_ratio and self.breach:
            self.publish_fairness(result)

    def publish_fairness(self, result: DriftResult) -> None:
        for grouping, rows in result.fairness.items():
            for row in rows:
                tags = {"grouping": grouping, "group": row["group"]}
                if row["approval_rate_ratio"] is not None:
                    screened = "true" if row["screened"] else "false"
                    self.impact_ratio.set(
                        row["approval_rate_ratio"], tags={**tags, "screened": screened}
                    )
                if row["screened"]:
                    self.breach.set(float(row["breach"]), tags=tags)

    def keep_fresh(self, latest: dict[str, Any]) -> None:
        """`publish` the latest result (a stored dict) again if REPUBLISH_SECONDS have passed
        since the last time; never raises."""
        now = time.monotonic()
        if now - self.republished < REPUBLISH_SECONDS:
            return
        self.republished = now
        try:
            self.publish(DriftResult.from_dict(latest))
        except Exception as exc:  # a metric must never stop the checks
            log.warning("drift gauges not published: %s", exc)
