"""The HTTP API of the decision service (FastAPI): routes, typed bodies, error answers.

`build_api(service)` makes the app around one DecisionService: the Serve deployment builds it
around itself in each replica, tests around an in-process service. The decision routes' bodies
are the service's dataset spec's (app.serving.bodies).
"""

# No `from __future__ import annotations`: the decision routes are defined inside
# `_decision_routes` with the spec's body classes, which FastAPI can only see as objects.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer, SecurityScopes

from app.serving import v2rest
from app.serving.auth import Caller
from app.serving.bodies import ApiModels, api_models
from app.serving.guard import REALM, Guard
from app.serving.idempotency import KEY_PATTERN
from app.serving.schemas import KEY_SCHEMA, BatchError, DriftReport, ErrorBody, Health, Probe
from app.serving.service import DecisionService, Outcome
from app.serving.v2rest import error as v2_error

router = APIRouter()
INVALID = "Invalid body; names the field."
UNAVAILABLE = "Feature store or model unavailable."
# What every /v1 route may answer before it does any work (guard.py), and for a missing scope.
REFUSALS = {
    401: "No bearer token, or one that is unknown, expired or revoked.",
    403: "The token lacks this route's scope.",
    413: "Body larger than api_max_body_bytes.",
    429: "This caller's rate limit is exceeded; see Retry-After.",
}
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`python -m jobs.api_keys create`) or a JWT from the configured "
    "issuer. Scopes: `decisions`, `decisions:batch`, `monitoring:read`.",
)


async def caller(
    security_scopes: SecurityScopes, request: Request, _: Annotated[Any, Depends(bearer)]
) -> Caller:
    """The caller the guard admitted, if it holds every scope the route needs (else 403).
    Async, though it awaits nothing: FastAPI runs a plain `def` dependency on a worker thread,
    a thread hop per request that cost ~9% of a replica's CPU under load (py-spy)."""
    admitted: Caller = request.state.caller
    missing = [scope for scope in security_scopes.scopes if scope not in admitted.scopes]
    if missing:
        raise HTTPException(
            403,
            detail=f"this token lacks the scope {missing[0]!r}",
            headers={
                "WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{missing[0]}"'
            },
        )
    return admitted


def _errors(descriptions: dict[int, str]) -> dict[int, dict[str, Any]]:
    """OpenAPI `responses` for error answers, all in the ErrorBody shape."""
    descriptions = {**REFUSALS, **descriptions}
    return {status: {"model": ErrorBody, "description": d} for status, d in descriptions.items()}


def build_api(service: DecisionService) -> FastAPI:
    """The FastAPI app answering for `service` (its OpenAPI schema is the API's reference)."""
    app = FastAPI(
        title="Credit decisions",
        version="1",
        description="Probability of default, decision and reason codes for a loan application, "
        "from the applicant's online features and the registered champion (or challenger) "
        "model.",
    )
    app.state.service = service
    app.add_exception_handler(RequestValidationError, _invalid_body)
    app.include_router(_decision_routes(api_models(service.dataset)))
    app.include_router(router)
    app.include_router(v2rest.router)
    app.add_middleware(Guard, gate=service.gate)
    return app


def _service(request: Request) -> DecisionService:
    return request.app.state.service


def _error(
    status: int, detail: Any, headers: dict[str, str] | None = None, error_id: str | None = None
) -> JSONResponse:
    body = ErrorBody(detail=detail, error_id=error_id).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def _respond(service: DecisionService, outcome: Outcome):
    """The answer (the route's response model renames it to the spec's body), or the error in
    the ErrorBody shape."""
    if outcome.status == 200:
        return outcome.response
    headers = None
    if outcome.status == 503:
        headers = service.retry_after()
    elif outcome.status == 409:  # a claimed key: answered, or freed, within the claim time
        headers = {"Retry-After": str(round(service.settings.idempotency_claim_seconds))}
    return _error(outcome.status, outcome.detail, headers, outcome.error_id)


async def _invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    if request.url.path.removeprefix(request.scope.get("root_path", "")).startswith("/v2"):
        return v2_error(400, f"invalid request: {exc.errors()[0].get('msg', 'invalid')}")
    # One entry per bad field, named as a dotted path inside the body ("application.purpose").
    problems = [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body",
            "message": err.get("msg", "invalid"),
        }
        for err in exc.errors()
    ]
    return _error(422, problems)


def _decision_routes(models: ApiModels) -> APIRouter:
    """POST /v1/decisions and /v1/decisions/batch with the dataset's own bodies."""
    routes = APIRouter()
    _decide_route(routes, models)
    _batch_route(routes, models)
    return routes


def _decide_route(routes: APIRouter, models: ApiModels) -> None:
    key = models.dataset.entity_key

    @routes.post(
        "/v1/decisions",
        response_model=models.DecisionResponse,
        responses=_errors(
            {
                400: "Malformed Idempotency-Key header, or a body that cannot be decoded.",
                404: f"Unknown {key}.",
                409: "A request with this Idempotency-Key is still being answered, or was "
                "decided and its answer could not be stored (retrying it never decides again).",
                422: INVALID + " Or an Idempotency-Key first used for a different request.",
                500: "A failure on our side (e.g. the applicant's stored features cannot be "
                "read); the body names an error id.",
                503: UNAVAILABLE + " Or the Idempotency-Key store.",
            }
        ),
    )
    async def decide(
        body: models.DecisionRequest,  # type: ignore[name-defined]
        request: Request,
        who: Annotated[Caller, Security(caller, scopes=["decisions"])],
        idempotency_key: str | None = Header(
            None,
            description="Retries with the same key get the first answer back (same "
            "request_id), never a second decision. 1-128 characters of A-Z a-z 0-9 _ . : -",
            # Declared, not enforced here: a malformed key gets the documented 400, not a 422.
            json_schema_extra=KEY_SCHEMA,
        ),
    ):
        service = _service(request)
        if idempotency_key is not None and not KEY_PATTERN.match(idempotency_key):
            return _error(400, "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 _ . : -")
        outcome = await service.decide(body, idempotency_key, who)
        if outcome.replayed:
            return JSONResponse(
                models.body(outcome.response), headers={"Idempotent-Replayed": "true"}
            )
        return _respond(service, outcome)


def _batch_route(routes: APIRouter, models: ApiModels) -> None:
    @routes.post(
        "/v1/decisions/batch",
        response_model=models.BatchResponse,
        responses=_errors(
            {
                400: "A body that cannot be decoded.",
                413: "Body larger than api_max_body_bytes, or more requests than "
                "max_batch_requests.",
                422: INVALID,
                503: UNAVAILABLE,
            }
        ),
    )
    async def decide_batch(
        body: models.BatchRequest,  # type: ignore[name-defined]
        request: Request,
        who: Annotated[Caller, Security(caller, scopes=["decisions:batch"])],
    ):
        service = _service(request)
        limit = service.config.max_batch_requests
        if len(body.requests) > limit:
            return _error(413, f"{len(body.requests)} requests in one batch; the limit is {limit}")
        # The rate limit counts decisions: the door took one token, the batch owes the rest.
        service.gate.limiter.charge(who, len(body.requests) - 1)
        outcomes = await service.run(body.requests, [who] * len(body.requests))
        if outcomes and outcomes[0].whole_batch:  # failed as a whole, for one reason
            return _respond(service, outcomes[0])
        errors = [
            BatchError(index=i, entity_id=r.entity_id, status=o.status, detail=o.detail)
            for i, (r, o) in enumerate(zip(body.requests, outcomes, strict=True))
            if o.status != 200
        ]
        # The service's shapes: the response model validates them once into the spec's body.
        decisions = [o.response for o in outcomes if o.status == 200]
        return {"decisions": decisions, "errors": errors}


# The open paths share one rate limit (api_open_rate_per_second).
OPEN_LIMIT = {429: {"model": ErrorBody, "description": "The open paths' rate limit is exceeded."}}


@router.get("/healthz", response_model=Probe, responses=OPEN_LIMIT)
async def healthz() -> Probe:
    """The replica's process answers. Open, so it says nothing else (details: /v1/status)."""
    return Probe(status="ok")


@router.get("/readyz", response_model=Probe, responses={503: {"model": Probe}, **OPEN_LIMIT})
async def readyz(request: Request):
    """200 when the champion is loaded and the online store answers, else 503. Open, so it
    says nothing else (details: /v1/status); answered from a result at most ~1 s old."""
    service = _service(request)
    health = await service.readiness()
    if health.status != "ok":
        return JSONResponse(
            Probe(status=health.status).model_dump(),
            status_code=503,
            headers=service.retry_after(),
        )
    return Probe(status="ok")


@router.get("/v1/status", response_model=Health, responses=_errors({}))
async def status(
    request: Request, _: Annotated[Caller, Security(caller, scopes=["monitoring:read"])]
) -> Health:
    """This replica in detail: models, online store, registry, routing, and what is wrong."""
    return await _service(request).readiness()


@router.get(
    "/v1/monitoring/drift",
    response_model=DriftReport,
    responses=_errors(
        {404: "No drift check has run yet.", 503: "The drift monitor is not running."}
    ),
)
async def drift(
    request: Request, _: Annotated[Caller, Security(caller, scopes=["monitoring:read"])]
):
    """The drift monitor's latest check: per-feature scores, PD drift, trigger state."""
    service = _service(request)
    report = await service.drift_report()
    if isinstance(report, Outcome):
        return _respond(service, report)
    return report
