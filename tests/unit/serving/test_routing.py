"""A/B routing: weights, stickiness and shadow are pure functions of the request and config."""

import pytest
from pydantic import ValidationError

from app.serving.routing import RoutingConfig, choose_variant, shadows, sticky_bucket


def test_bucket_is_stable_uniform_and_salted():
    ids = [f"A{i:07d}" for i in range(20000)]
    points = [sticky_bucket(i, "ab-1") for i in ids]
    assert points == [sticky_bucket(i, "ab-1") for i in ids]
    assert all(0 <= p < 1 for p in points)
    for cut in (0.1, 0.3, 0.5, 0.9):
        assert abs(sum(p < cut for p in points) / len(points) - cut) < 0.01
    resalted = [sticky_bucket(i, "ab-2") for i in ids]
    assert sum(a < 0.5 and b >= 0.5 for a, b in zip(points, resalted, strict=True)) > 4000


def test_weight_sends_the_configured_share_to_the_challenger():
    config = RoutingConfig(challenger_weight=0.2)
    chosen = [choose_variant(f"A{i}", config, has_challenger=True) for i in range(10000)]
    assert abs(chosen.count("challenger") / 10000 - 0.2) < 0.015


def test_no_challenger_or_zero_weight_means_champion():
    ids = [f"A{i}" for i in range(500)]
    assert {choose_variant(i, RoutingConfig(challenger_weight=1.0), False) for i in ids} == {
        "champion"
    }
    assert {choose_variant(i, RoutingConfig(), True) for i in ids} == {"champion"}
    assert {choose_variant(i, RoutingConfig(challenger_weight=1.0), True) for i in ids} == {
        "challenger"
    }


def test_raising_the_weight_only_moves_applicants_to_the_challenger():
    ids = [f"A{i}" for i in range(3000)]
    low = [choose_variant(i, RoutingConfig(challenger_weight=0.1), True) for i in ids]
    high = [choose_variant(i, RoutingConfig(challenger_weight=0.4), True) for i in ids]
    assert all(h == "challenger" for lo, h in zip(low, high, strict=True) if lo == "challenger")


def test_non_sticky_routing_uses_the_draw():
    config = RoutingConfig(challenger_weight=0.5, sticky=False)
    assert choose_variant("A1", config, True, draw=lambda: 0.49) == "challenger"
    assert choose_variant("A1", config, True, draw=lambda: 0.5) == "champion"


def test_shadow_only_copies_champion_traffic_when_a_challenger_exists():
    on = RoutingConfig(shadow=True)
    assert shadows("champion", on, True)
    assert not shadows("challenger", on, True)
    assert not shadows("champion", on, False)
    assert not shadows("champion", RoutingConfig(), True)


@pytest.mark.parametrize(
    "bad",
    [
        {"challenger_weight": 1.5},
        {"challenger_weight": -0.1},
        {"max_batch_requests": 0},
        {"shadow_weight": 1},
        {"decision_threshold": 1.0},
    ],
)
def test_bad_user_config_is_rejected_by_name(bad):
    with pytest.raises(ValidationError, match=next(iter(bad))):
        RoutingConfig.model_validate(bad)


def test_a_challengers_traffic_tag_only_adds_traffic():
    from app.serving.routing import effective_config

    base = RoutingConfig()
    assert effective_config(base, None) == base
    assert effective_config(base, "shadow").shadow is True
    assert effective_config(base, "0.05").challenger_weight == 0.05
    assert effective_config(base, "weight=0.1").challenger_weight == 0.1
    # An operator's larger weight wins; nonsense and out-of-range tags change nothing.
    assert effective_config(RoutingConfig(challenger_weight=0.3), "0.05").challenger_weight == 0.3
    assert effective_config(base, "lots") == base and effective_config(base, "2") == base
    assert effective_config(RoutingConfig(registry_traffic=False), "shadow").shadow is False
