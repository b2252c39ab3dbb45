"""Which model answers: weighted A/B, sticky per applicant, shadow; pure and Ray-free."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from app.domain import CHALLENGER, CHAMPION, Variant


class RoutingConfig(BaseModel):
    """The Serve `user_config`: changed by `serve deploy` and applied without a restart."""

    model_config = ConfigDict(extra="forbid")

    challenger_weight: float = Field(
        0.0, ge=0, le=1, description="Share of traffic the challenger answers."
    )
    sticky: bool = Field(
        True, description="Route by a hash of the entity id, so an applicant keeps its variant."
    )
    salt: str = Field(
        "ab-1", min_length=1, description="Hash salt; change it to re-draw the sticky groups."
    )
    shadow: bool = Field(
        False, description="Challenger also scores the champion's traffic after the response."
    )
    decision_threshold: float | None = Field(
        None, gt=0, lt=1, description="Override of the models' PD cut-off; unset: the model's."
    )
    counter_offers: bool = Field(
        True,
        description="On a champion's decline, also answer the best terms it would approve "
        "(bounds: the counter_offer_* settings); ~0.5 ms per decline, approvals pay nothing "
        "(`python -m benchmarks.counter_offer`).",
    )
    alias_poll_seconds: float = Field(
        10.0, ge=0, description="How often replicas check the registry aliases; 0 = never."
    )
    max_batch_requests: int = Field(
        100, ge=1, description="Largest /v1/decisions/batch body (413 above it)."
    )
    batch_max_size: int = Field(
        16, ge=1, description="@serve.batch: concurrent requests scored together."
    )
    batch_wait_timeout_s: float = Field(
        0.0,
        ge=0,
        description="@serve.batch: longest wait for a batch to fill; 0 takes what queued "
        "while the previous batch ran, so a lone request never waits.",
    )
    score_inline: bool = Field(
        True,
        description="Score a batch on the replica's event loop (measured 2.5x the throughput "
        "of handing it to a scoring thread: no GIL hand-off); false: on the scoring thread, "
        "so a slow online store never holds up the loop.",
    )
    log_flush_rows: int = Field(
        500, ge=1, description="Prediction log: write a Parquet part at this many records."
    )
    log_flush_seconds: float = Field(
        5.0, gt=0, description="Prediction log: write pending records at least this often."
    )
    drift_monitor: bool = Field(
        True, description="Send answered decisions' features to the drift monitor actor."
    )
    registry_traffic: bool = Field(
        True,
        description="Honour the challenger version's `traffic` tag (set by drift-triggered "
        "retraining: `shadow` or an A/B weight) on top of this config.",
    )


def effective_config(config: RoutingConfig, challenger_traffic: str | None) -> RoutingConfig:
    """The config with the challenger's registry `traffic` tag applied.

    The tag can only add traffic (shadow on, or a weight floor), so a retrained challenger
    gets what retraining asked for without an operator redeploying, and an operator's larger
    weight still wins. A malformed tag is ignored.
    """
    if not config.registry_traffic or not challenger_traffic:
        return config
    tag = challenger_traffic.strip().lower()
    if tag == "shadow":
        return config if config.shadow else config.model_copy(update={"shadow": True})
    try:
        weight = float(tag.removeprefix("weight="))
    except ValueError:
        return config
    if 0 < weight <= 1 and weight > config.challenger_weight:
        return config.model_copy(update={"challenger_weight": weight})
    return config


def pinned(config: RoutingConfig, variant: Variant) -> RoutingConfig:
    """The config that has `variant` answer every request (a version asked for directly, as
    V2's /versions/{v}/infer does), with no shadow: the caller chose who answers."""
    weight = 1.0 if variant == CHALLENGER else 0.0
    return config.model_copy(update={"challenger_weight": weight, "sticky": False, "shadow": False})


def sticky_bucket(entity_id: str, salt: str) -> float:
    """A stable point in [0, 1) for an applicant: the same on every replica and every restart."""
    digest = hashlib.blake2b(f"{salt}:{entity_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose_variant(
    entity_id: str,
    config: RoutingConfig,
    has_challenger: bool,
    draw: Callable[[], float] = random.random,
) -> Variant:
    """The variant that answers this request.

    Sticky routing compares the applicant's bucket with the weight, so raising the weight
    only moves applicants from champion to challenger (never back), and lowering it the reverse.
    """
    if not has_challenger or config.challenger_weight <= 0:
        return CHAMPION
    point = sticky_bucket(entity_id, config.salt) if config.sticky else draw()
    return CHALLENGER if point < config.challenger_weight else CHAMPION


def shadows(answering: Variant, config: RoutingConfig, has_challenger: bool) -> bool:
    """Whether the challenger also scores this request, off the response path."""
    return config.shadow and has_challenger and answering == CHAMPION


def routing_record(config: RoutingConfig) -> str:
    """The routing a record keeps: enough to tell again which variant a sticky applicant
    draws."""
    kept = config.model_dump(include={"challenger_weight", "sticky", "salt", "shadow"})
    return json.dumps(kept, sort_keys=True)
