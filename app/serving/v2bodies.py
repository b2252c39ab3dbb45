"""The Open Inference Protocol's REST bodies (pydantic) and their OpenAPI declarations: the
inference request and response, the error body, and what each route may answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.serving.schemas import KEY_SCHEMA


class InputTensor(BaseModel):
    name: str = Field(min_length=1)
    shape: list[int] = Field(description="[N] or [N, 1]: one value per application.")
    datatype: str = Field(description="BYTES, INT64, FP64, BOOL (see the model's metadata).")
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = Field(
        None, description="Row-major values; absent when sent as binary (binary_data_size)."
    )


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """V2 inference request: one tensor per input, N rows each (see GET /v2/models/{model})."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    # Some clients (KServe's) repeat the path's model in the body; it must match the path.
    model_name: str | None = None
    model_version: str | None = None
    parameters: dict[str, Any] | None = Field(
        None, description="`idempotency_key` (one-row requests; or the Idempotency-Key header)."
    )
    inputs: list[InputTensor] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


class OutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[OutputTensor]


class V2Error(BaseModel):
    error: str


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic schema with its $defs inlined (an OpenAPI requestBody cannot carry them)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline(InferRequest.model_json_schema())}},
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "As on /v1/decisions (or the idempotency_key parameter); one row.",
            "schema": {"type": "string", **KEY_SCHEMA},
        },
        {
            "name": "Inference-Header-Content-Length",
            "in": "header",
            "required": False,
            "description": "Binary tensor extension: the JSON part's length; binary data after.",
            "schema": {"type": "integer", "minimum": 1},
        },
    ],
}


ERRORS = {
    400: "A malformed request or tensor (names the input, row and problem).",
    401: "No bearer token, or one that is unknown, expired or revoked.",
    403: "The token lacks the scope `decisions` (one row) or `decisions:batch` (N rows).",
    404: "Unknown model, a version that is not loaded, or an unknown applicant.",
    409: "A request with this idempotency key is still being answered.",
    413: "Body larger than api_max_body_bytes, or more rows than max_batch_requests.",
    422: "An idempotency key first used for a different request.",
    429: "This caller's rate limit is exceeded; see Retry-After.",
    500: "A failure on our side; the message names an error id.",
    503: "Feature store or model unavailable; see Retry-After.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": V2Error, "description": ERRORS[s]} for s in statuses}


# The open routes share one rate limit (api_open_rate_per_second).
OPEN_LIMIT = {429: {"model": V2Error, "description": "The open paths' rate limit is exceeded."}}
