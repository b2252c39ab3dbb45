"""Settings of serving: the prediction log, replica health, idempotency and API access.
Fields only; app.config.Settings combines the groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field


class ServingSettings(BaseModel):
    # --- serving ---------------------------------------------------------------------------
    prediction_log_dir: Path | None = Field(
        None,
        description="The prediction log, the lender's decision record: Parquet parts "
        "`date=YYYY-MM-DD/part-*.parquet` plus each replica's append-only journal `_journal/` "
        "(default: `<data_dir>/predictions`). Personal data: per decision the applicant id, the "
        "raw features the model saw (age, employment, job, housing, property, telephone, "
        "checking and savings status, credit history, credit amount, duration, purpose, "
        "dependants, ...), PD, decision, reason codes, counter-offer, model version and the "
        "caller's key id; kept until `jobs.retention` deletes it (prediction_log_retention_days).",
    )
    serve_store_unhealthy_seconds: float = Field(
        30,
        gt=0,
        description="A replica whose online store has been unreachable or hung this long "
        "fails Serve's health check, so Serve replaces it (meanwhile it answers 503 at once).",
    )
    serve_retry_after_seconds: int = Field(
        5, ge=1, description="Retry-After sent with a 503 (feature store or model unavailable)."
    )
    idempotency_ttl_seconds: float = Field(
        86_400, gt=0, description="How long an answer is replayed for its Idempotency-Key."
    )
    idempotency_claim_seconds: float = Field(
        30,
        gt=0,
        description="How long an unanswered Idempotency-Key stays claimed (a retry meanwhile "
        "gets 409); a replica lost mid-request frees its keys after this.",
    )
    prediction_log_fsync_seconds: float = Field(
        1.0,
        gt=0,
        description="Prediction log: fsync each replica's journal this often. A killed "
        "replica loses no answered decision (each batch is written before its answers leave); "
        "a crash of the machine itself can lose at most about this many seconds of them.",
    )
    prediction_log_max_pending: int = Field(
        100_000,
        ge=1,
        description="Prediction log: records a replica holds in memory while the disk refuses "
        "writes (retried with backoff); beyond it the oldest are dropped and counted "
        "(`credit_prediction_log_dropped_total`).",
    )
    prediction_log_retention_days: int = Field(
        761,
        ge=0,
        description="`python -m jobs.retention` (run it daily) deletes prediction-log days "
        "older than this many days, and records what it removed in `_retention.jsonl` "
        "(default: 25 months, Reg B's record-keeping period, 12 CFR 1002.12(b)).",
    )
    prediction_log_retention_min_days: int = Field(
        761,
        ge=1,
        description="The shortest retention `python -m jobs.retention` accepts: a `--days` "
        "below it is refused, so a typo cannot delete a decision record the law still needs "
        "(default: 25 months, 761 days, Reg B's 12 CFR 1002.12(b); lower it only where no such "
        "rule applies).",
    )

    # --- counter-offers (app/training/offers.py; on/off: user_config `counter_offers`) --------
    counter_offer_min_amount_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Counter-offers to declines: the lowest amount offered, as a share of the "
        "amount asked for.",
    )
    counter_offer_amount_step: int = Field(
        250,
        ge=1,
        description="Counter-offers: amounts below the one asked for are multiples of this (DM).",
    )
    counter_offer_max_amounts: int = Field(
        16,
        ge=1,
        le=64,
        description="Counter-offers: amount levels tried, the one asked for included (a wide "
        "range gets a wider step); 1 offers other durations only.",
    )
    counter_offer_durations: list[Annotated[int, Field(ge=1, le=120)]] = Field(
        default_factory=lambda: [6, 12, 18, 24, 30, 36, 48, 60],
        max_length=24,
        description="Counter-offers: durations (months) that may be offered besides the one "
        "asked for (JSON).",
    )

    # --- API access (app/serving/auth.py, guard.py) ------------------------------------------
    api_auth: Literal["enabled", "disabled"] = Field(
        "enabled",
        description="Bearer-token authentication on every `/v1/*` route (`/healthz`, `/readyz` "
        "stay open). `disabled` is for development only and is logged as a warning at every "
        "start.",
    )
    api_keys_file: Path | None = Field(
        None,
        description="API keys as SHA-256 hashes with their scopes, written by `python -m "
        "jobs.api_keys`; re-read when it changes, so keys rotate without a restart (default: "
        "`<data_dir>/api_keys.json`; on a cluster, a path every node can read).",
    )
    api_jwt_issuer: str | None = Field(
        None, description="Also accept JWTs from this issuer (`iss`); unset: API keys only."
    )
    api_jwt_audience: str | None = Field(None, description="Required `aud` of those JWTs.")
    api_jwt_key_file: Path | None = Field(
        None,
        description="The issuer's PEM public key (or, for HS256, a shared secret) in a file; "
        "re-read when it changes.",
    )
    api_jwt_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"], description="Accepted JWT algorithms (JSON)."
    )
    api_rate_per_second: float = Field(
        100,
        ge=0,
        description="Requests per second each caller may send to each replica on average "
        "(a key's own `rate_per_second` wins; 0 = no limit); over it: 429 + Retry-After.",
    )
    api_rate_burst: int = Field(200, ge=1, description="Requests a caller may send at once.")
    api_open_rate_per_second: float = Field(
        50,
        ge=0,
        description="Requests per second the open paths (`/healthz`, `/readyz`, `/docs`, "
        "`/openapi.json`) answer per replica, all callers together, bursts of twice that "
        "(0 = no limit); over it: 429 + Retry-After.",
    )
    api_max_body_bytes: int = Field(
        262_144,
        ge=1024,
        description="Largest request body; a larger one gets 413 before it is parsed.",
    )
