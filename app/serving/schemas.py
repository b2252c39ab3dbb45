"""Typed request and response bodies of the decision API (the OpenAPI schema at /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.domain import Decision, Variant

# An entity id as the request names it: a key, not free text (it reaches logs and the store).
ENTITY_ID = {"min_length": 1, "max_length": 64, "pattern": r"^[A-Za-z0-9_.:-]+$"}
# An Idempotency-Key as the API takes it (a malformed one gets 400), and its OpenAPI schema.
IDEMPOTENCY_KEY = r"^[A-Za-z0-9_.:-]{1,128}$"
KEY_SCHEMA = {"pattern": IDEMPOTENCY_KEY, "minLength": 1, "maxLength": 128}


class Application(BaseModel):
    """What the applicant asks for: the dataset spec's request fields (see `api_models`)."""

    model_config = ConfigDict(extra="forbid")


class DecisionRequest(BaseModel):
    """One decision asked for. `entity_id` is the spec's entity key in the body; `application`
    holds the request fields. The API validates bodies with the
    spec's subclass from `api_models`; the service reads this shape."""

    model_config = ConfigDict(extra="forbid")

    entity_id: str = Field(**ENTITY_ID)
    application: Application | None = None


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
    """Terms the champion would approve for a declined applicant: one field per offer lever of
    the spec (its amount and its term), then the PD."""

    model_config = ConfigDict(extra="allow")

    probability_of_default: float = Field(
        ge=0, le=1, description="The champion's PD for the applicant on these terms."
    )


class DecisionResponse(BaseModel):
    request_id: str
    entity_id: str
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
        "term nearest the one asked for) it would approve, which it approves when submitted "
        "as a new application; null on an approval, when no terms within bounds would be "
        "approved, with `counter_offers` off, or when the dataset declares no offer levers.",
    )

    model_config = ConfigDict(protected_namespaces=())


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[DecisionRequest] = Field(min_length=1)


class BatchError(BaseModel):
    index: int = Field(description="Position of the request in the batch.")
    entity_id: str
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


class GroupApprovals(BaseModel):
    group: str
    n: int
    approvals: int
    approval_rate: float
    approval_rate_ratio: float | None = Field(
        description="Approval rate over the most favoured group's (null: no approvals at all)."
    )
    p_value: float | None = Field(description="Fisher's exact test against that group.")
    screened: bool
    breach: bool = Field(description="Below the screen, significantly (screened groupings).")


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
    stability: dict[str, dict] = Field(
        default_factory=dict,
        description="Per column: PSI of the PD and CSI of each characteristic on the "
        "champion's frozen bins, with its band (below 0.10 stable, 0.25 and above act).",
    )
    fairness: dict[str, list[GroupApprovals]] = Field(
        default_factory=dict,
        description="Per fairness grouping the window can be grouped by: approvals per group "
        "as answered, the adverse impact ratio and, for screened groupings, the screen's verdict.",
    )
