"""The drift gauges are set again while idle, at most every REPUBLISH_SECONDS, never raising."""

from __future__ import annotations

from app.domain import PREDICTION
from app.monitoring.metrics import REPUBLISH_SECONDS, DriftMetrics
from tests.utils.monitoring import result


class Gauge:
    def __init__(self) -> None:
        self.values: list[float] = []

    def set(self, value: float, tags: dict | None = None) -> None:
        self.values.append(value)


def metrics() -> DriftMetrics:
    return DriftMetrics(*(Gauge() for _ in range(9)))


def test_the_latest_result_is_republished_only_once_its_gauges_may_have_gone():
    gauges = metrics()
    gauges.keep_fresh(result(True).to_dict())
    assert gauges.detected.values == []
    gauges.republished -= REPUBLISH_SECONDS
    gauges.keep_fresh(result(True).to_dict())
    assert gauges.detected.values == [1.0] and gauges.share.values == [0.05]


def test_an_unreadable_latest_result_is_not_fatal():
    gauges = metrics()
    gauges.republished -= REPUBLISH_SECONDS
    gauges.keep_fresh({"not": "a result"})
    assert gauges.detected.values == []


class TaggedGauge(Gauge):
    def __init__(self) -> None:
        super().__init__()
        self.tagged: dict[tuple, float] = {}

    def set(self, value: float, tags: dict | None = None) -> None:
        self.tagged[tuple(sorted((tags or {}).items()))] = value


def test_the_score_psi_and_each_characteristic_csi_are_published_by_column():
    gauges = metrics()
    gauges.stability = TaggedGauge()
    checked = result(False)
    checked.stability = {PREDICTION: {"psi": 0.02}, "purpose": {"psi": 0.31}}
    gauges.publish(checked)
    assert gauges.stability.tagged == {
        (("column", PREDICTION), ("index", "psi")): 0.02,
        (("column", "purpose"), ("index", "csi")): 0.31,
    }


def test_each_groups_impact_ratio_is_published_and_breaches_only_for_screened_groupings():
    gauges = metrics()
    gauges.impact_ratio, gauges.breach = TaggedGauge(), TaggedGauge()
    checked = result(False)
    row = {"n": 200, "approvals": 40, "approval_rate": 0.2, "p_value": 1e-9}
    checked.fairness = {
        "sex": [
            {
                **row,
                "group": "women",
                "approval_rate_ratio": 0.25,
                "screened": True,
                "breach": True,
            },
            {**row, "group": "men", "approval_rate_ratio": 1.0, "screened": True, "breach": False},
        ],
        "age_band": [
            {
                **row,
                "group": "18-25",
                "approval_rate_ratio": 0.2,
                "screened": False,
                "breach": False,
            },
            # No approvals anywhere: no ratio to publish.
            {
                **row,
                "group": "26+",
                "approval_rate_ratio": None,
                "screened": False,
                "breach": False,
            },
        ],
    }
    gauges.publish(checked)
    assert gauges.impact_ratio.tagged == {
        (("group", "women"), ("grouping", "sex"), ("screened", "true")): 0.25,
        (("group", "men"), ("grouping", "sex"), ("screened", "true")): 1.0,
        (("group", "18-25"), ("grouping", "age_band"), ("screened", "false")): 0.2,
    }
    assert gauges.breach.tagged == {
        (("group", "women"), ("grouping", "sex")): 1.0,
        (("group", "men"), ("grouping", "sex")): 0.0,
    }
