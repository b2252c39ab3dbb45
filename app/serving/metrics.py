"""Prometheus metrics of the decision service, exported through Ray's metrics agent."""

from __future__ import annotations

from ray.serve import metrics

# Milliseconds: covers a fast lookup (~1 ms) up to a request stuck behind a slow dependency.
LATENCY_BOUNDARIES_MS = [1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 200, 500, 1000, 5000]


class ServingMetrics:
    """Created inside a replica (Ray metrics need a running worker), never at import."""

    def __init__(self) -> None:
        self.decisions = metrics.Counter(
            "credit_decisions_total",
            description="Decisions made, by answering variant, decision, shadow flag and the "
            "caller's key id (`jwt` for every JWT caller).",
            tag_keys=("variant", "decision", "shadow", "caller"),
        )
        self.shadow_skipped = metrics.Counter(
            "credit_shadow_skipped_total",
            description="Champion answers the challenger did not shadow-score because "
            "shadow scoring was too far behind (its queue is bounded).",
        )
        self.refused = metrics.Counter(
            "credit_requests_refused_total",
            description="Requests refused before any work, by HTTP status (401 no or bad "
            "token, 413 body too large, 429 rate limit, of a caller or of the open paths).",
            tag_keys=("status",),
        )
        self.errors = metrics.Counter(
            "credit_decision_errors_total",
            description="Requests that got no decision, by error type.",
            tag_keys=("error",),
        )
        self.latency = metrics.Histogram(
            "credit_decision_latency_ms",
            description="Time in the replica for one decision request (fetch, score, reasons).",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("variant",),
        )
        self.feature_latency = metrics.Histogram(
            "credit_feature_fetch_latency_ms",
            description="Online feature fetch from the Feast online store, per call.",
            boundaries=LATENCY_BOUNDARIES_MS,
        )
        self.log_failures = metrics.Counter(
            "credit_prediction_log_failures_total",
            description="Prediction-log disk operations that failed (records are kept and "
            "retried with backoff).",
        )
        self.log_pending = metrics.Gauge(
            "credit_prediction_log_pending",
            description="Prediction-log records held in memory because the disk refused them "
            "(retried with backoff; the ones a replica crash would lose).",
        )
        self.log_dropped = metrics.Counter(
            "credit_prediction_log_dropped_total",
            description="Prediction-log records lost: held beyond prediction_log_max_pending "
            "while the disk refused writes.",
        )
        self.monitor_dropped = metrics.Counter(
            "credit_monitor_rows_dropped_total",
            description="Decision rows not sent to the drift monitor (its queue was full or "
            "it was unreachable for too long).",
        )
