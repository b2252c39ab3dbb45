"""The `traffic` tag of a registered version is honoured only within the operator's bound."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("tag", "honoured", "note"),
    [
        (None, None, None),
        ("none", None, None),
        ("shadow", "shadow", "honoured (shadow scoring only)"),
        ("0.05", "weight=0.05", "honoured (A/B weight floor 0.05)"),
        ("weight=0.1", "weight=0.1", "honoured"),
        ("weight=0.5", None, "ignored: above serve_max_tag_traffic 0.1"),
        ("1", None, "ignored: above serve_max_tag_traffic 0.1"),
        ("weight=1.5", None, "ignored: weight outside (0, 1]"),
        ("all of it", None, "ignored: not `shadow`"),
    ],
)
def test_a_traffic_tag_is_honoured_only_within_the_bound(tag, honoured, note):
    from app.serving.routing import RoutingConfig, effective_config
    from app.training.source import bounded_traffic

    got, said = bounded_traffic(tag, 0.1)
    assert got == honoured
    assert (said is None) if note is None else (note in said)
    config = effective_config(RoutingConfig(), got)
    assert config.challenger_weight <= 0.1
