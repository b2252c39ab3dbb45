"""One batch of decisions: online features -> variant -> score and reasons -> the answers and
the prediction-log records. Pure apart from the online-store read: no Ray, no HTTP, no pandas.
The DecisionService calls it on its scoring thread; tests call it directly.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.dataset import Dataset
from app.domain import CHALLENGER, CHAMPION, DECLINE, VARIANTS
from app.features.online import OnlineRows, model_inputs
from app.predictions.record import decision_context, signed
from app.serving.logrecord import log_record
from app.serving.models import ModelSet
from app.serving.routing import RoutingConfig, choose_variant, routing_record, shadows
from app.serving.schemas import CounterOffer, DecisionRequest, DecisionResponse
from app.training.offers import OfferBounds, counter_offers
from app.training.source import ServedModel

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """A dependency (feature store, models) is down: 503 with Retry-After. The exception's
    text is for the log and the status route; callers get `public`."""

    public = "feature store or model unavailable"


class ModelUnavailable(Unavailable):
    public = "model unavailable"


class StoreUnavailable(Unavailable):
    """The online store is down (known from an earlier failure, or not connected yet)."""

    public = "feature store unavailable"


class StoreFailed(StoreUnavailable):
    """The online store failed or timed out on this batch's read."""


UNREADABLE = "the stored features of this applicant cannot be read"


@dataclass
class Outcome:
    status: int
    response: DecisionResponse | None = None
    detail: str = ""
    replayed: bool = False  # the stored answer to an earlier request with the same key
    error_id: str | None = None  # the log line that has the full error
    whole_batch: bool = False  # the batch failed as a whole (a dependency down, an exception)


@dataclass
class Features:
    """A batch's model inputs, row i answering request i."""

    columns: dict[str, list]  # every raw column the models read
    known: list[bool]  # False: the store holds nothing usable for the applicant
    as_of: list[datetime | None]
    ids: list[str] = field(default_factory=list)  # the entity id of each request
    # Why, where the store holds a record for the applicant that cannot be decoded or has a
    # value of the wrong type (500 for that request alone).
    unreadable: list[str | None] = field(default_factory=list)

    def take(self, rows: list[int]) -> dict[str, list]:
        return {name: [values[i] for i in rows] for name, values in self.columns.items()}


@dataclass
class Scored:
    outcomes: list[Outcome]
    records: list[dict[str, Any]] = field(default_factory=list)
    # What the challenger should also score after the answers are out (shadow traffic).
    shadow_rows: list[int] = field(default_factory=list)
    # request_id -> who asked (caller, subject, idempotency key), for the log records of both
    # answers.
    askers: dict[str, dict[str, Any]] = field(default_factory=dict)
    routing: str | None = None  # the routing in force, as the records keep it


def fetch_features(
    reader, requests: list[DecisionRequest], observe: Callable[[float], None]
) -> Features:
    """One online-store round trip for the batch; a failure is Unavailable, never "unknown"."""
    started = time.perf_counter()
    try:
        rows: OnlineRows = reader.read([r.entity_id for r in requests])
    except Exception as exc:
        raise StoreFailed(f"feature store unavailable: {type(exc).__name__}: {exc}") from None
    finally:
        observe((time.perf_counter() - started) * 1000)
    return features_of(rows, requests, reader.dataset)


def features_of(rows: OnlineRows, requests: list[DecisionRequest], dataset: Dataset) -> Features:
    applications = [r.application for r in requests]
    request_columns = {c: [getattr(a, c) for a in applications] for c in dataset.request_columns}
    ids = [r.entity_id for r in requests]
    return Features(
        model_inputs(rows, request_columns, dataset),
        rows.known.tolist(),
        rows.as_of,
        ids=ids,
        unreadable=rows.unreadable,
    )


def decide_batch(
    requests: list[DecisionRequest],
    features: Features,
    models: ModelSet,
    config: RoutingConfig,
    offers: OfferBounds | None = None,
) -> Scored:
    """Route, score and explain a batch whose features are fetched; 404 for unknown ids.
    With `offers`, the champion's declines get its counter-offer (the challenger's never do:
    offers are the champion's policy, and a sticky applicant would send the taken offer back
    to the challenger)."""
    has_challenger = models.challenger is not None
    outcomes: list[Outcome | None] = [None] * len(requests)
    records: list[dict[str, Any]] = []
    routed: dict[str, list[int]] = {variant: [] for variant in VARIANTS}
    for i, request in enumerate(requests):
        if features.known[i]:
            routed[choose_variant(request.entity_id, config, has_challenger)].append(i)
    routing = routing_record(config)
    for variant, rows in routed.items():
        if not rows:
            continue
        served = getattr(models, variant)
        bounds = offers if variant == CHAMPION else None
        threshold = config.decision_threshold
        answers = answer(served, variant, features, rows, threshold, offers=bounds, routing=routing)
        for i, (response, record) in zip(rows, answers, strict=True):
            outcomes[i] = Outcome(200, response)
            records.append(record)
    unreadable = features.unreadable or [None] * len(requests)
    scored = Scored(
        [
            outcome or _unanswered(request, bad)
            for outcome, request, bad in zip(outcomes, requests, unreadable, strict=True)
        ],
        records,
        routing=routing,
    )
    scored.shadow_rows = [
        i
        for i, o in enumerate(scored.outcomes)
        if o.status == 200 and shadows(o.response.model.variant, config, has_challenger)
    ]
    return scored


def undecided(requests: list[DecisionRequest], features: Features) -> Scored:
    """A batch answered whole or not at all, with an applicant unknown (or unreadable): the
    failed requests' outcomes, and 424 for the rest, which were not decided."""
    unreadable = features.unreadable or [None] * len(requests)
    return Scored(
        [
            Outcome(424, detail="not decided: another row of the request failed")
            if known
            else _unanswered(request, bad)
            for request, known, bad in zip(requests, features.known, unreadable, strict=True)
        ]
    )


def _unanswered(request: DecisionRequest, unreadable: str | None) -> Outcome:
    if unreadable:  # the service logs why, under an error id
        return Outcome(500, detail=UNREADABLE)
    # The spec's body class names the key as the caller sent it.
    key = type(request).model_fields["entity_id"].alias or "entity_id"
    return Outcome(404, detail=f"unknown {key} {request.entity_id!r}: no features")


def answer(
    served: ServedModel,
    variant: str,
    features: Features,
    rows: list[int],
    threshold: float | None,
    request_ids: list[str] | None = None,
    shadow: bool = False,
    offers: OfferBounds | None = None,
    routing: str | None = None,
) -> list[tuple[DecisionResponse, dict[str, Any]]]:
    """One model's answers for `rows` of the batch, with their prediction-log records; with
    `offers`, each decline's counter-offer (one model call for all of them, none for approvals)."""
    columns = features.take(rows)
    scores = served.compiled.score(columns, len(rows), threshold)
    declined = [k for k, decision in enumerate(scores.decisions) if decision == DECLINE]
    offered = offers_for(served, columns, declined, threshold, offers) if offers else {}
    model = {"name": served.name, "version": served.version, "variant": variant}
    logged = served.compiled.raw_columns
    cut = served.compiled.threshold if threshold is None else threshold
    made = decision_context(cut, routing, offers)
    out = []
    for k, i in enumerate(rows):
        response = DecisionResponse(
            request_id=request_ids[k] if request_ids else uuid.uuid4().hex,
            entity_id=features.ids[i],
            probability_of_default=float(scores.probability_of_default[k]),
            decision=scores.decisions[k],
            reasons=scores.reasons[k],
            model=model,
            features_as_of=features.as_of[i],
            counter_offer=offered.get(k),
        )
        record = log_record(response, columns, k, logged, served, shadow)
        out.append((response, signed(record | made)))
    return out


def offers_for(
    served: ServedModel,
    columns: dict[str, list],
    declined: list[int],
    threshold: float | None,
    bounds: OfferBounds,
) -> dict[int, CounterOffer | None]:
    """Counter-offers of the declined rows `declined` of `columns`; a failure to make them
    costs the offers (logged), never the decisions."""
    if not declined:
        return {}
    try:
        made = counter_offers(served.compiled, columns, declined, threshold, bounds)
    except Exception:
        log.exception("counter-offers failed for model version %s", served.version)
        return {}
    return {
        k: CounterOffer(**offer.as_dict()) if offer else None
        for k, offer in zip(declined, made, strict=True)
    }


def shadow_records(
    served: ServedModel, features: Features, scored: Scored, threshold: float | None
) -> list[dict[str, Any]]:
    """The challenger's answers to champion traffic, as log records (never returned)."""
    rows = scored.shadow_rows
    request_ids = [scored.outcomes[i].response.request_id for i in rows]
    answers = answer(
        served, CHALLENGER, features, rows, threshold, request_ids, True, routing=scored.routing
    )
    return [record for _, record in answers]


def attribute(scored: Scored, askers: list[dict[str, Any]]) -> None:
    """Each answer's log record (and its shadow's, later) says who asked: `askers[i]` holds
    the fields for request i."""
    scored.askers = {
        o.response.request_id: who
        for o, who in zip(scored.outcomes, askers, strict=True)
        if o.status == 200
    }
    for record in scored.records:
        record.update(scored.askers.get(record["request_id"], {}))
