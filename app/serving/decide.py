"""One batch of decisions: online features -> variant -> score and reasons -> the answers and
the prediction-log records. No Ray, no HTTP: the DecisionService calls it on its scoring thread.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from app.serving.models import ModelSet, ServedModel
from app.serving.routing import RoutingConfig, choose_variant, shadows
from app.serving.schemas import DecisionRequest, DecisionResponse


class Unavailable(Exception):
    """A dependency (feature store, models) is down: 503 with Retry-After."""


@dataclass
class Outcome:
    status: int
    response: DecisionResponse | None = None
    detail: str = ""


@dataclass
class Scored:
    outcomes: list[Outcome]
    records: list[dict[str, Any]] = field(default_factory=list)
    shadow_frame: pd.DataFrame | None = None
    shadow_meta: list[dict[str, Any]] = field(default_factory=list)


def response_of(
    result: pd.DataFrame, pos: int, served, variant: str, request_id: str, applicant_id, as_of
) -> DecisionResponse:
    """Row `pos` of a `CreditModel.score` result as the API's answer."""
    return DecisionResponse(
        request_id=request_id,
        applicant_id=applicant_id,
        probability_of_default=float(result["probability_of_default"].iat[pos]),
        decision=result["decision"].iat[pos],
        reasons=result["reasons"].iat[pos],
        model={"name": served.name, "version": served.version, "variant": variant},
        features_as_of=as_of,
    )


def log_record(response: DecisionResponse, row: pd.Series, served, shadow: bool) -> dict:
    """The prediction-log record of one answer: the decision and every model input."""
    record = {
        "request_id": response.request_id,
        "logged_at": datetime.now(UTC),
        "applicant_id": response.applicant_id,
        "variant": response.model.variant,
        "shadow": shadow,
        "model_name": served.name,
        "model_version": served.version,
        "probability_of_default": response.probability_of_default,
        "decision": response.decision,
        "reasons": json.dumps([r.model_dump() for r in response.reasons]),
        "features_as_of": response.features_as_of,
    }
    for column in served.model.encoder.raw_columns:
        value = row.get(column)
        record[column] = None if value is None or value != value else value
    return record


def fetch_features(reader, requests: list[DecisionRequest], observe: Callable[[float], None]):
    """One online-store read for the batch; a failure is Unavailable, never "unknown"."""
    rows = [{"applicant_id": r.applicant_id, **r.application.model_dump()} for r in requests]
    started = time.perf_counter()
    try:
        return reader.read(rows)
    except Exception as exc:
        raise Unavailable(f"feature store unavailable: {type(exc).__name__}: {exc}") from None
    finally:
        observe((time.perf_counter() - started) * 1000)


def decide_batch(
    requests: list[DecisionRequest], features, models: ModelSet, config: RoutingConfig
) -> Scored:
    """Route, score and explain a batch whose features are fetched; 404 for unknown ids."""
    has_challenger = models.challenger is not None
    variants = [choose_variant(r.applicant_id, config, has_challenger) for r in requests]
    outcomes: list[Outcome | None] = [None] * len(requests)
    scored = Scored(outcomes=[])
    for variant in ("champion", "challenger"):
        served = getattr(models, variant)
        idx = [i for i, v in enumerate(variants) if v == variant and bool(features.known[i])]
        if not idx:
            continue
        subset = features.frame.iloc[idx]
        result = served.model.score(subset, threshold=config.decision_threshold)
        for pos, i in enumerate(idx):
            response = response_of(
                result,
                pos,
                served,
                variant,
                uuid.uuid4().hex,
                requests[i].applicant_id,
                features.as_of[i],
            )
            outcomes[i] = Outcome(200, response)
            scored.records.append(log_record(response, subset.iloc[pos], served, False))
    scored.outcomes = [
        outcome
        or Outcome(404, detail=f"unknown applicant_id {request.applicant_id!r}: no features")
        for outcome, request in zip(outcomes, requests, strict=True)
    ]
    _mark_shadow(scored, features, config, has_challenger)
    return scored


def _mark_shadow(scored: Scored, features, config: RoutingConfig, has_challenger: bool) -> None:
    """What the challenger should also score, after the answers are out."""
    shadow_idx = [
        i
        for i, o in enumerate(scored.outcomes)
        if o.status == 200 and shadows(o.response.model.variant, config, has_challenger)
    ]
    if shadow_idx:
        scored.shadow_frame = features.frame.iloc[shadow_idx]
        scored.shadow_meta = [
            {
                "request_id": scored.outcomes[i].response.request_id,
                "applicant_id": scored.outcomes[i].response.applicant_id,
                "features_as_of": features.as_of[i],
            }
            for i in shadow_idx
        ]


def shadow_records(
    served: ServedModel, frame: pd.DataFrame, meta: list[dict[str, Any]], threshold: float
) -> list[dict[str, Any]]:
    """The challenger's answers to champion traffic, as log records (never returned)."""
    result = served.model.score(frame, threshold=threshold)
    return [
        log_record(
            response_of(
                result,
                pos,
                served,
                "challenger",
                info["request_id"],
                info["applicant_id"],
                info["features_as_of"],
            ),
            frame.iloc[pos],
            served,
            True,
        )
        for pos, info in enumerate(meta)
    ]
