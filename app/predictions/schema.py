"""What the prediction log holds: its Arrow schema (decision metadata plus every raw feature the
model saw) and the one rule for which records were answers callers received."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from app.dataset import Dataset
from app.domain import PREDICTION
from app.training.preprocess import FeatureEncoder

# Every log's fields; the entity's id (under the spec's key), the offer columns and the model's
# features come from the dataset (`log_schema`).
META_FIELDS: list[pa.Field] = [
    pa.field("request_id", pa.string()),
    pa.field("logged_at", pa.timestamp("us", tz="UTC")),
    pa.field("variant", pa.string()),
    pa.field("shadow", pa.bool_()),
    pa.field("model_name", pa.string()),
    pa.field("model_version", pa.string()),
    pa.field(PREDICTION, pa.float64()),
    pa.field("decision", pa.string()),
    pa.field("reasons", pa.string()),  # JSON list, as in the response
    pa.field("features_as_of", pa.timestamp("us", tz="UTC")),
    pa.field("caller", pa.string()),  # the API key id (or jwt:<hash of issuer, subject>)
    pa.field("caller_subject", pa.string()),  # a JWT's subject, in full (null for API keys)
    pa.field("idempotency_key", pa.string()),  # the Idempotency-Key sent, if any
    # The dataset spec the deciding model was trained on (its hash: `Dataset.spec_hash`).
    pa.field("spec_hash", pa.string()),
    # What replay needs besides the model and the features: the PD cut applied, the routing
    # in force (JSON: challenger_weight, sticky, salt, shadow) and the counter-offer bounds
    # (JSON, null: no offers made); then the record's digest (app.predictions.record).
    pa.field("threshold", pa.float64()),
    pa.field("routing", pa.string()),
    pa.field("offer_bounds", pa.string()),
    pa.field("record_digest", pa.string()),
]


def offer_columns(dataset: Dataset) -> list[str]:
    """The counter-offer columns of a log record: each lever, then the PD (none without)."""
    levers = dataset.spec.offers
    names = [levers.amount, levers.term, "probability_of_default"] if levers else []
    return [f"counter_offer_{name}" for name in names]


def log_schema(encoder: FeatureEncoder) -> pa.Schema:
    """Decision metadata plus every raw feature the model saw (for drift checks and audit),
    typed from the encoder's dataset."""
    dataset = encoder.dataset
    entity = [pa.field(dataset.entity_key, pa.string())]
    # The counter-offer answered with a decline (null: none made, or a log older than them).
    offers = [
        pa.field(c, pa.float64() if c.endswith(PREDICTION) else pa.int64())
        for c in offer_columns(dataset)
    ]
    features = [pa.field(c, pa.float64()) for c in encoder.numeric]
    features += [pa.field(c, pa.string()) for c in encoder.categorical]
    return pa.schema(META_FIELDS[:2] + entity + META_FIELDS[2:] + offers + features)


def schema_for(dataset: Dataset) -> pa.Schema:
    """The log schema of decisions on `dataset`'s model columns."""
    return log_schema(FeatureEncoder.for_dataset(dataset))


def answered(frame: pd.DataFrame) -> pd.DataFrame:
    """The decisions returned to callers: shadow scores left out, and so is a row whose shadow
    flag is unknown (it is not known to be an answer the applicant received)."""
    return frame[frame["shadow"].eq(False)]
