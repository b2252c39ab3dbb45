"""The Open Inference Protocol's REST routes (/v2/...), with the binary tensor extension that
tritonclient uses by default. Errors are the protocol's `{"error": ...}` bodies.

The guard (guard.py) has admitted the caller before a route runs, as for /v1; the decision
itself is v2.infer, shared with the gRPC servicer.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from app.serving import v2
from app.serving.v2bodies import (
    INFER_BODY,
    OPEN_LIMIT,
    InferRequest,
    InferResponse,
    ServerMetadata,
    errors,
)
from app.serving.v2tensors import (
    Tensor,
    TensorError,
    decode_raw,
    element_count,
    encode_raw,
    flatten,
)

HEADER_LENGTH = "inference-header-content-length"


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def parse_infer(raw: bytes, header_length: str | None) -> tuple[InferRequest, list[Tensor]]:
    """The JSON part of an infer body and its input tensors (binary ones read from the bytes
    after the JSON, in input order). ProtocolError (400) names what is wrong."""
    try:
        size = len(raw) if header_length is None else int(header_length)
        if not 0 < size <= len(raw):
            raise ValueError(f"Inference-Header-Content-Length {size} for a {len(raw)}-byte body")
        body = InferRequest.model_validate_json(raw[:size])
        rest, offset, inputs = raw[size:], 0, []
        for t in body.inputs:
            binary = (t.parameters or {}).get("binary_data_size")
            if binary is None:
                data = flatten(t.data if t.data is not None else [])
                if len(data) != element_count(t.name, t.shape):
                    raise TensorError(f"input {t.name!r}: {len(data)} values for shape {t.shape}")
            else:
                data = decode_raw(
                    t.name, t.datatype, tuple(t.shape), rest[offset : offset + binary]
                )
                offset += binary
            inputs.append(Tensor(t.name, t.datatype, tuple(t.shape), data))
        if offset != len(rest):
            raise TensorError(f"{len(rest) - offset} bytes after the last binary input")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise v2.ProtocolError(400, f"invalid inference request: {where}: {first['msg']}") from None
    except (ValueError, TensorError) as exc:
        raise v2.ProtocolError(400, f"invalid inference request: {exc}") from None
    return body, inputs


def respond(body: InferRequest, model: str, answer: v2.Answer) -> Response:
    """The answer's outputs (those asked for), in JSON or, where asked, as binary data."""
    asked = {o.name: o for o in body.outputs or []}
    all_binary = bool((body.parameters or {}).get("binary_data_output"))
    outputs, chunks = [], []
    for tensor in answer.outputs:
        if asked and tensor.name not in asked:
            continue
        wanted = (asked[tensor.name].parameters or {}) if asked else {}
        out: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype}
        out["shape"] = list(tensor.shape)
        if wanted.get("binary_data", all_binary):
            chunks.append(encode_raw(tensor.datatype, tensor.data))
            out["parameters"] = {"binary_data_size": len(chunks[-1])}
        else:
            out["data"] = tensor.data
        outputs.append(out)
    result: dict[str, Any] = {"model_name": model, "model_version": answer.model_version}
    if body.id is not None:
        result["id"] = body.id
    if answer.replayed:
        result["parameters"] = {"idempotent_replayed": True}
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    if not chunks:
        return JSONResponse(result | {"outputs": outputs}, headers=headers)
    header = json.dumps(result | {"outputs": outputs}).encode()
    headers[HEADER_LENGTH] = str(len(header))
    return Response(
        header + b"".join(chunks), media_type="application/octet-stream", headers=headers
    )


router = APIRouter(tags=["Open Inference Protocol (V2)"])


def _service(request: Request) -> Any:
    return request.app.state.service


@router.get("/v2", response_model=ServerMetadata, responses=OPEN_LIMIT)
async def server_metadata() -> dict[str, Any]:
    """The server's name, version and protocol extensions. Open, like the health routes."""
    return v2.SERVER


@router.get("/v2/health/live", responses=OPEN_LIMIT)
async def server_live() -> dict[str, bool]:
    """200 while the replica's process answers. Open."""
    return {"live": True}


@router.get(
    "/v2/health/ready",
    responses={503: {"description": "Not ready; see Retry-After."}, **OPEN_LIMIT},
)
async def server_ready(request: Request):
    """200 when the champion is loaded and the online store answers (as /readyz). Open."""
    service = _service(request)
    if (await service.readiness()).status != "ok":
        return JSONResponse({"ready": False}, status_code=503, headers=service.retry_after())
    return {"ready": True}


@router.get("/v2/models/{model}", responses=errors(401, 404, 429))
@router.get("/v2/models/{model}/versions/{version}", responses=errors(401, 404, 429))
async def model_metadata(request: Request, model: str, version: str | None = None):
    """Inputs (the dataset spec's entity key and request fields) and outputs, one value per
    row; `versions` lists the loaded versions (champion first)."""
    service = _service(request)
    try:
        versions = v2.loaded_versions(service, model, version)
    except v2.ProtocolError as exc:
        return error(exc.status, exc.message)
    return v2.model_metadata(service.dataset, model, versions)


@router.get("/v2/models/{model}/ready", responses=errors(401, 404, 429, 503))
@router.get("/v2/models/{model}/versions/{version}/ready", responses=errors(401, 404, 429, 503))
async def model_ready(request: Request, model: str, version: str | None = None):
    """200 when the model (or the loaded version) can answer: loaded, online store up."""
    service = _service(request)
    try:
        v2.loaded_versions(service, model, version)
    except v2.ProtocolError as exc:
        return error(exc.status, exc.message)
    if (await service.readiness()).status != "ok":
        body = {"name": model, "ready": False}
        return JSONResponse(body, status_code=503, headers=service.retry_after())
    return {"name": model, "ready": True}


_INFER = {
    "response_model": InferResponse,
    "responses": {
        200: {
            "content": {"application/octet-stream": {}},
            "description": "Binary outputs "
            "asked for (binary_data_output): the JSON part, then the raw tensors.",
        },
        **errors(400, 401, 403, 404, 409, 413, 422, 429, 500, 503),
    },
    "openapi_extra": INFER_BODY,
}


@router.post("/v2/models/{model}/infer", **_INFER)
@router.post("/v2/models/{model}/versions/{version}/infer", **_INFER)
async def model_infer(request: Request, model: str, version: str | None = None):
    """Decisions for N applications: exactly the /v1/decisions answers (routing, record,
    limits). A version asks that loaded version directly, bypassing A/B routing and shadow.
    Scope `decisions` for one row, `decisions:batch` for more; an idempotency key (header or
    parameter) for one row. A tensor is answered whole: if any row fails, none is decided."""
    try:
        body, inputs = parse_infer(await request.body(), request.headers.get(HEADER_LENGTH))
        v2.check_outputs([o.name for o in body.outputs or []])
        for named, path in ((body.model_name, model), (body.model_version, version)):
            if named and path and named != path:
                raise v2.ProtocolError(400, f"the body names {named!r}, the path {path!r}")
        parameter = (body.parameters or {}).get(v2.IDEMPOTENCY_PARAMETER)
        key = v2.chosen_key(request.headers.get("idempotency-key"), parameter)
        caller = request.state.caller
        answer = await v2.infer(_service(request), model, version, inputs, caller, key)
        return respond(body, model, answer)
    except v2.ProtocolError as exc:
        return error(exc.status, exc.message, exc.headers)
