"""The Open Inference Protocol (V2) door to the decision service: the model's metadata from the
dataset spec, input tensors -> decision requests, answers -> output tensors, and `infer`, which
asks the service exactly as POST /v1/decisions (one row) or /v1/decisions/batch (N rows) does:
same routing, record, metrics, idempotency, scopes and limits. Shared by the REST routes
(v2rest.py) and the gRPC servicer (v2grpc.py); no HTTP, no gRPC here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app.dataset import Dataset
from app.domain import CHALLENGER, CHAMPION, Variant
from app.serving.auth import Caller
from app.serving.bodies import ApiModels, api_models
from app.serving.decide import Outcome
from app.serving.idempotency import KEY_PATTERN
from app.serving.schemas import DecisionRequest, DecisionResponse
from app.serving.v2tensors import Tensor, TensorError

SERVER = {"name": "credit-decisions", "version": "1", "extensions": ["binary_tensor_data"]}
# The input datatype of each column type, and what each accepts (a client's int64 amount
# into a float field, a float column sent as FP32).
DATATYPE = {"int": "INT64", "float": "FP64", "bool": "BOOL", "string": "BYTES", "category": "BYTES"}
_INTEGERS = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
ACCEPTS = {
    "INT64": _INTEGERS | {"FP16", "FP32", "FP64"},  # integral floats, NaN for a missing value
    "FP64": _INTEGERS | {"FP16", "FP32", "FP64"},
    "BOOL": {"BOOL"},
    "BYTES": {"BYTES"},
}
# One value per row; reasons and counter_offer are JSON (the /v1 answer's objects).
OUTPUTS = (
    ("request_id", "BYTES"),
    ("probability_of_default", "FP64"),
    ("decision", "BYTES"),
    ("model_version", "INT64"),
    ("variant", "BYTES"),
    ("reasons", "BYTES"),
    ("counter_offer", "BYTES"),
    ("features_as_of", "BYTES"),
)
IDEMPOTENCY_PARAMETER = "idempotency_key"


class ProtocolError(Exception):
    """A request the door answers with an error: `status` is the HTTP status (v2grpc maps it
    to a gRPC code); `message` is what the caller reads."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class Answer:
    outputs: list[Tensor]
    model_version: str  # "" when the rows were answered by more than one version
    replayed: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def chosen_key(header: str | None, parameter: Any) -> str | None:
    """The idempotency key, sent as a header (REST), metadata (gRPC) or request parameter."""
    if header is not None and parameter is not None and header != parameter:
        raise ProtocolError(400, "the Idempotency-Key header and the idempotency_key differ")
    key = header if header is not None else parameter
    if key is not None and not isinstance(key, str):
        raise ProtocolError(400, "the idempotency_key parameter must be a string")
    return key


def inputs_of(dataset: Dataset) -> list[tuple[str, str]]:
    """(name, datatype) of each input: the entity key, then each request field."""
    columns = dataset.spec.columns
    fields = [(c, DATATYPE[columns[c].type]) for c in dataset.request_columns]
    return [(dataset.entity_key, "BYTES"), *fields]


def model_metadata(dataset: Dataset, name: str, versions: list[str]) -> dict[str, Any]:
    """GET /v2/models/{name} and ModelMetadata: inputs and outputs one value per row."""
    return {
        "name": name,
        "versions": versions,
        "platform": "credit-decisions",
        "inputs": [{"name": n, "datatype": d, "shape": [-1]} for n, d in inputs_of(dataset)],
        "outputs": [{"name": n, "datatype": d, "shape": [-1]} for n, d in OUTPUTS],
    }


def check_model(name: str, served: str) -> None:
    if name != served:
        raise ProtocolError(404, f"unknown model {name!r}; this service serves {served!r}")


def loaded_versions(service: Any, model: str, version: str | None) -> list[str]:
    """The versions a metadata or ready request is about: `version` if it is loaded, else the
    loaded ones (champion first); 404 for another model or a version that is not loaded."""
    check_model(model, service.settings.model_name)
    loaded = service.models.versions()
    if version:
        pinned_variant(loaded, model, version)
        return [version]
    return [v for v in loaded.values() if v]


def check_outputs(names: list[str]) -> None:
    """Before deciding: an unknown output is a bad request, not a decision without an answer."""
    known = [n for n, _ in OUTPUTS]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ProtocolError(
            400, f"unknown output {unknown[0]!r}; the outputs are {', '.join(known)}"
        )


def pinned_variant(versions: dict[str, str | None], name: str, version: str | None) -> Variant:
    """The variant of a loaded `version` (asked for directly), or 404 naming what is loaded."""
    for variant in (CHAMPION, CHALLENGER):
        if version is not None and versions.get(variant) == version:
            return variant
    loaded = ", ".join(f"{v} ({variant})" for variant, v in versions.items() if v) or "none"
    raise ProtocolError(404, f"version {version!r} of {name!r} is not loaded; loaded: {loaded}")


def requests_of(inputs: list[Tensor], models: ApiModels) -> list[DecisionRequest]:
    """The decision requests of a batch of N rows (400 naming the input, row and problem)."""
    dataset = models.dataset
    wanted = dict(inputs_of(dataset))
    by_name: dict[str, Tensor] = {}
    for tensor in inputs:
        if tensor.name not in wanted:
            raise ProtocolError(
                400, f"unknown input {tensor.name!r}; the inputs are {', '.join(wanted)}"
            )
        if tensor.name in by_name:
            raise ProtocolError(400, f"input {tensor.name!r} is given twice")
        by_name[tensor.name] = tensor
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise ProtocolError(
            400, f"missing input {missing[0]!r}; the inputs are {', '.join(wanted)}"
        )
    try:
        counts = {t.rows for t in by_name.values()}
        if len(counts) != 1 or 0 in counts:
            raise TensorError("every input must have the same number of rows, at least one")
        columns = {name: _column(t, wanted[name]) for name, t in by_name.items()}
    except TensorError as exc:
        raise ProtocolError(400, str(exc)) from None
    return _validated(columns, counts.pop(), models)


def _column(tensor: Tensor, datatype: str) -> list[Any]:
    if tensor.datatype not in ACCEPTS[datatype]:
        raise TensorError(
            f"input {tensor.name!r} has datatype {tensor.datatype}; expected {datatype}"
        )
    if len(tensor.data) != tensor.rows:
        raise TensorError(
            f"input {tensor.name!r}: {len(tensor.data)} values for shape {list(tensor.shape)}"
        )
    if datatype == "BYTES":
        try:
            return [v.decode() if isinstance(v, bytes) else v for v in tensor.data]
        except UnicodeDecodeError:
            raise TensorError(f"input {tensor.name!r} is not UTF-8 text") from None
    # A missing value: null (REST) or NaN (any float tensor); pydantic then says whether the
    # field may be missing. An integral float into an integer field is that integer.
    values = [None if isinstance(v, float) and math.isnan(v) else v for v in tensor.data]
    if datatype == "INT64":
        return [int(v) if isinstance(v, float) and v.is_integer() else v for v in values]
    return values


def _validated(
    columns: dict[str, list[Any]], rows: int, models: ApiModels
) -> list[DecisionRequest]:
    key = models.dataset.entity_key
    fields = [c for c in columns if c != key]
    requests = []
    for i in range(rows):
        body: dict[str, Any] = {key: columns[key][i]}
        if fields:
            body["application"] = {c: columns[c][i] for c in fields}
        try:
            requests.append(models.DecisionRequest.model_validate(body))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = str(error["loc"][-1]) if error.get("loc") else "row"
            raise ProtocolError(400, f"input {where!r} row {i}: {error['msg']}") from None
    return requests


def outputs_of(answers: list[DecisionResponse], models: ApiModels) -> list[Tensor]:
    """The output tensors of a batch's answers (row i answering request i)."""
    bodies = [models.body(a) for a in answers]  # counter-offer levers under the spec's names
    values: dict[str, list[Any]] = {
        "request_id": [a.request_id for a in answers],
        "probability_of_default": [a.probability_of_default for a in answers],
        "decision": [a.decision for a in answers],
        "model_version": [int(a.model.version) for a in answers],
        "variant": [a.model.variant for a in answers],
        "reasons": [json.dumps(b["reasons"]) for b in bodies],
        "counter_offer": [json.dumps(b["counter_offer"]) for b in bodies],
        "features_as_of": [b["features_as_of"] or "" for b in bodies],
    }
    n = len(answers)
    return [Tensor(name, datatype, (n,), values[name]) for name, datatype in OUTPUTS]


def _failure(outcome: Outcome, retry_after: dict[str, str], claim_seconds: float) -> ProtocolError:
    message = outcome.detail if isinstance(outcome.detail, str) else json.dumps(outcome.detail)
    if outcome.error_id:
        message = f"{message} (error id {outcome.error_id})"
    headers = retry_after if outcome.status == 503 else {}
    if outcome.status == 409:
        headers = {"Retry-After": str(round(claim_seconds))}
    return ProtocolError(outcome.status, message, headers)


async def infer(
    service: Any,
    model: str,
    version: str | None,
    inputs: list[Tensor],
    caller: Caller,
    idempotency_key: str | None = None,
) -> Answer:
    """Decide the N rows of `inputs` for `caller` (already admitted: token and rate limit)."""
    check_model(model, service.settings.model_name)
    models = api_models(service.dataset)
    requests = requests_of(inputs, models)
    scope = "decisions" if len(requests) == 1 else "decisions:batch"
    if scope not in caller.scopes:
        raise ProtocolError(403, f"this token lacks the scope {scope!r}")
    pin = pinned_variant(service.models.versions(), model, version) if version else None
    if len(requests) == 1:
        outcomes = [await _one(service, requests[0], caller, idempotency_key, pin)]
    else:
        outcomes = await _many(service, requests, caller, idempotency_key, pin)
    # 424: not decided because another row failed; the caller needs the rows that did.
    failed = [(i, o) for i, o in enumerate(outcomes) if o.status not in (200, 424)]
    if failed:
        i, outcome = failed[0]
        error = _failure(outcome, service.retry_after(), service.settings.idempotency_claim_seconds)
        if len(requests) > 1 and not outcome.whole_batch:
            error.message = (
                f"row {i}: {error.message} ({len(failed)} of {len(requests)} rows failed; "
                "no row of this request was decided)"
            )
        raise error
    answers = [o.response for o in outcomes]
    versions = {a.model.version for a in answers}
    answered = Answer(outputs_of(answers, models), versions.pop() if len(versions) == 1 else "")
    answered.replayed = any(o.replayed for o in outcomes)
    return answered


async def _one(
    service: Any, request: DecisionRequest, caller: Caller, key: str | None, pin: Variant | None
) -> Outcome:
    if key is not None and not KEY_PATTERN.match(key):
        raise ProtocolError(
            400, "the idempotency key must be 1-128 characters of A-Z a-z 0-9 _ . : -"
        )
    return await service.decide(request, key, caller, pin=pin)


async def _many(
    service: Any,
    requests: list[DecisionRequest],
    caller: Caller,
    key: str | None,
    pin: Variant | None,
) -> list[Outcome]:
    if key is not None:
        raise ProtocolError(
            400,
            "an idempotency key applies to a one-row request (as on POST /v1/decisions); "
            "send each row with its own key, or the batch without one",
        )
    limit = service.config.max_batch_requests
    if len(requests) > limit:
        raise ProtocolError(413, f"{len(requests)} rows in one request; the limit is {limit}")
    # The rate limit counts decisions: the door took one token, the batch owes the rest.
    service.gate.limiter.charge(caller, len(requests) - 1)
    return await service.run(requests, [caller] * len(requests), pin=pin, atomic=True)
