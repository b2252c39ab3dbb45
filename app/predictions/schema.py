"""What the prediction log holds: its Arrow schema (decision metadata plus every raw feature the
model saw) and the one rule for which records were answers callers received."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from app.config import SHIPPED_DATASET
from app.dataset import load_dataset
from app.domain import PREDICTION
from app.training.preprocess import FeatureEncoder

META_FIELDS: list[pa.Field] = [
    pa.field("request_id", pa.string()),
    pa.field("logged_at", pa.timestamp("us", tz="UTC")),
    pa.field("applicant_id", pa.string()),
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
    # The counter-offer answered with a decline (null: none made, or a log older than them).
    pa.field("counter_offer_credit_amount", pa.int64()),
    pa.field("counter_offer_duration_in_month", pa.int64()),
    pa.field("counter_offer_probability_of_default", pa.float64()),
]


def log_schema(encoder: FeatureEncoder | None = None) -> pa.Schema:
    """Decision metadata plus every raw feature the model saw (for drift checks and audit)."""
    # Without an encoder: the shipped dataset's model columns (what the log held before logs
    # were typed from the served model).
    encoder = encoder or FeatureEncoder.for_dataset(load_dataset(SHIPPED_DATASET))
    features = [pa.field(c, pa.float64()) for c in encoder.numeric]
    features += [pa.field(c, pa.string()) for c in encoder.categorical]
    return pa.schema(META_FIELDS + features)


def answered(frame: pd.DataFrame) -> pd.DataFrame:
    """The decisions returned to callers: shadow scores left out, and so is a row whose shadow
    flag is unknown (it is not known to be an answer the applicant received)."""
    return frame[frame["shadow"].eq(False)]
