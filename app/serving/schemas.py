"""Typed request and response bodies of the decision API (the OpenAPI schema at /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.data.schema import CATEGORIES, RANGES
from app.domain import Decision, Variant

Purpose = Literal[CATEGORIES["purpose"]]  # type: ignore[valid-type]


class Application(BaseModel):
    """What the applicant asks for: the request-time fields the on-demand features use."""

    model_config = ConfigDict(extra="forbid")

    credit_amount: int = Field(gt=0, le=RANGES["credit_amount"][1], description="Amount in DM.")
    duration_in_month: int = Field(ge=1, le=120, description="Loan duration in months.")
    purpose: Purpose = Field(description="Loan purpose, one of the dataset's purposes.")
    installment_rate_in_percentage_of_disposable_income: int = Field(
        ge=1, le=4, description="Installment rate as a share of disposable income (1-4)."
    )


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    applicant_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    application: Application


class Reason(BaseModel):
    code: str = Field(description="Stable reason code, e.g. R03.")
    feature: str = Field(description="The raw feature cited.")
    description: str = Field(description="Text for the applicant.")
    contribution: float = Field(description="Push towards default on the log-odds scale.")


class ModelInfo(BaseModel):
    name: str
    version: str
    variant: Variant


class CounterOffer(BaseModel):
    """Terms the champion would approve for a declined applicant (settings bound the search)."""

    credit_amount: int = Field(gt=0, description="Amount in DM, at most the one asked for.")
    duration_in_month: int = Field(ge=1, le=120, description="Loan duration in months.")
    probability_of_default: float = Field(
        ge=0, le=1, description="The champion's PD for the applicant on these terms."
    )


class DecisionResponse(BaseModel):
    request_id: str
    applicant_id: str
    probability_of_default: float = Field(ge=0, le=1)
    decision: Decision
    reasons: list[Reason] = Field(max_length=4, description="At most 4; at least one on a decline.")
    model: ModelInfo
    features_as_of: datetime | None = Field(
        description="Event time of the oldest stored feature used (UTC); null if none."
    )
    counter_offer: CounterOffer | None = Field(
        None,
        description="On a decline answered by the champion: the highest amount (then the "
        "duration nearest the one asked for) it would approve, which it approves when submitted "
        "as a new application; null on an approval, when no terms within bounds would be "
        "approved, or with `counter_offers` off.",
    )

    model_config = ConfigDict(protected_namespaces=())


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[DecisionRequest] = Field(min_length=1)


class BatchError(BaseModel):
    index: int = Field(description="Position of the request in the batch.")
    applicant_id: str
    status: int = Field(description="The HTTP status this request alone would have had.")
    detail: str


class BatchResponse(BaseModel):
    decisions: list[DecisionResponse]
    errors: list[BatchError]


class ErrorBody(BaseModel):
    detail: str | list = Field(description="What was wrong; for 422, one entry per bad field.")
    request_id: str | None = None
    error_id: str | None = Field(
        None,
        description="For a failure on our side (500, 503): the id of the replica's log line "
        "that holds the full error; quote it when reporting the problem.",
    )


class Probe(BaseModel):
    """What the open probes (/healthz, /readyz) say: the status and nothing else."""

    status: Literal["ok", "unavailable"]


class Health(BaseModel):
    """A replica's readiness in detail (GET /v1/status, scope monitoring:read)."""

    status: Literal["ok", "unavailable"]
    champion: str | None = None
    challenger: str | None = None
    feature_store: str | None = None
    detail: str | None = None
    replica: str | None = Field(None, description="Which replica answered (Serve replica id).")
    node: str | None = Field(None, description="The Ray node id of the replica that answered.")
    routing: dict | None = Field(None, description="The user_config this replica applies.")
    registry: Literal["ok", "unavailable"] | None = Field(
        None,
        description="The MLflow registry at the last alias check; while unavailable the "
        "loaded models keep answering (status stays ok with a champion loaded).",
    )
    model_error: str | None = Field(
        None,
        description="Why the last model refresh failed (registry unreachable, a version "
        "refused for a digest mismatch); the loaded models are kept.",
    )
    traffic: str | None = Field(
        None, description="What was done with the challenger's registry `traffic` tag."
    )


class FeatureDriftOut(BaseModel):
    column: str
    kind: Literal["numerical", "categorical", "discrete"]
    method: str = Field(description="Evidently drift method, e.g. wasserstein, jensenshannon.")
    score: float | None
    threshold: float
    drifted: bool


class DriftReport(BaseModel):
    """The drift monitor's latest check (GET /v1/monitoring/drift)."""

    checked_at: datetime
    rows: int = Field(description="Live rows in the checked window.")
    rows_used: int = Field(description="Rows compared (large windows are sampled).")
    reference_rows: int = Field(description="Rows of the champion's training data compared.")
    dataset_drift: bool
    drifted_features: list[str]
    drift_share: float
    features: list[FeatureDriftOut]
    prediction: FeatureDriftOut | None = Field(description="Drift of the predicted PD.")
    model_version: str | None = Field(description="Champion version whose reference was used.")
    window_start: datetime | None
    window_end: datetime | None
    extra: dict = Field(default_factory=dict, description="Check number, report path, trigger.")
    monitor: dict = Field(default_factory=dict, description="The monitor's counters now.")
