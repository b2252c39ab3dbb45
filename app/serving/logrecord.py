"""The prediction-log record of one answer: the decision, its context and every model input,
as the log schema (app.predictions.schema) has them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.predictions.schema import offer_columns
from app.serving.schemas import DecisionResponse
from app.training.source import ServedModel


def log_record(
    response: DecisionResponse,
    columns: dict[str, list],
    k: int,
    logged: tuple[str, ...],
    served: ServedModel,
    shadow: bool,
) -> dict[str, Any]:
    """The prediction-log record of one answer: the decision and every model input."""
    dataset = served.compiled.model.dataset
    record = {
        "request_id": response.request_id,
        "logged_at": datetime.now(UTC),
        dataset.entity_key: response.entity_id,
        "variant": response.model.variant,
        "shadow": shadow,
        "model_name": served.name,
        "model_version": served.version,
        "probability_of_default": response.probability_of_default,
        "decision": response.decision,
        "reasons": json.dumps([r.model_dump() for r in response.reasons]),
        "features_as_of": response.features_as_of,
        "spec_hash": dataset.spec_hash,
    }
    # Every offer column of the model's spec, null when none was made.
    offer = {} if response.counter_offer is None else response.counter_offer.model_dump()
    for column in offer_columns(dataset):
        record[column] = offer.get(column.removeprefix("counter_offer_"))
    for column in logged:
        value = columns[column][k]
        record[column] = None if value is None or value != value else value
    return record
