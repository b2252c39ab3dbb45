"""Shadow traffic: the challenger scores what the champion answered, after the answers are out;
logged (`shadow = true`) and counted, never returned. Its queue is bounded, so shadow scoring
never grows memory or delays answers under load: a batch beyond it is not shadowed, and counted
(`credit_shadow_skipped_total`)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from app.domain import CHALLENGER
from app.serving.decide import Features, Scored, shadow_records
from app.serving.routing import RoutingConfig, effective_config
from app.training.source import ServedModel

log = logging.getLogger(__name__)

# Batches waiting for the challenger on the scoring thread.
MAX_SHADOW_BATCHES = 32


class ShadowScoring:
    def __init__(
        self,
        work: Executor,
        metrics,
        append: Callable[[list[dict[str, Any]]], None],
        challenger: Callable[[], ServedModel | None],
        config: Callable[[], RoutingConfig],
    ) -> None:
        self.work = work
        self.metrics = metrics
        self.append = append  # into the prediction log
        self.challenger = challenger
        self.config = config
        self._lock = threading.Lock()
        self._batches = 0
        self.skipped = 0  # champion answers not shadow-scored (the queue was full)

    def offer(self, features: Features, scored: Scored) -> None:
        """Queue this batch's shadow scoring behind it on the scoring thread, unless
        MAX_SHADOW_BATCHES wait already: then it is skipped and counted."""
        with self._lock:
            if self._batches >= MAX_SHADOW_BATCHES:
                self.skipped += len(scored.shadow_rows)
                self.metrics.shadow_skipped.inc(len(scored.shadow_rows))
                return
            self._batches += 1
        self.work.submit(self._run, features, scored)

    def _run(self, features: Features, scored: Scored) -> None:
        try:
            self._score(features, scored)
        finally:
            with self._lock:
                self._batches -= 1

    def _score(self, features: Features, scored: Scored) -> None:
        served = self.challenger()
        if served is None:
            return
        try:
            threshold = effective_config(self.config(), served.traffic).decision_threshold
            records = shadow_records(served, features, scored, threshold)
            for record in records:
                record.update(scored.askers.get(record["request_id"], {}))
            for decision, count in Counter(r["decision"] for r in records).items():
                tags = {"variant": CHALLENGER, "decision": decision, "shadow": "1", "caller": "-"}
                self.metrics.decisions.inc(count, tags=tags)
            self.append(records)
        except Exception:
            self.metrics.errors.inc(tags={"error": "shadow"})
            log.exception("shadow scoring failed")
