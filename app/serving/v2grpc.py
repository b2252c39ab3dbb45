"""The Open Inference Protocol over gRPC: KServe's GRPCInferenceService as methods of the
decision deployment, reached through Ray Serve's gRPC ingress (`grpc_options` in
serve_config.yaml names `add_servicer`). The decision is v2.infer, as for the REST routes;
bearer tokens come in the `authorization` metadata and HTTP statuses map to gRPC codes.
"""

from __future__ import annotations

import contextlib
from typing import Any

import grpc

from app.serving import v2
from app.serving.guard import Refusal
from app.serving.v2proto import grpc_predict_v2_pb2 as pb
from app.serving.v2proto import grpc_predict_v2_pb2_grpc as pb_grpc
from app.serving.v2tensors import Tensor, TensorError, decode_raw, encode_raw

Code = grpc.StatusCode
CODES = {
    400: Code.INVALID_ARGUMENT,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND,
    409: Code.ABORTED,  # the key's first request is still being answered: retry
    413: Code.RESOURCE_EXHAUSTED,
    422: Code.FAILED_PRECONDITION,  # the key was first used for a different request
    429: Code.RESOURCE_EXHAUSTED,
    500: Code.INTERNAL,
    503: Code.UNAVAILABLE,
}
# Where each datatype's values sit in InferTensorContents.
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def add_servicer(servicer: Any, server: Any) -> None:
    """What `grpc_options.grpc_servicer_functions` names. Also puts the protocol's messages in
    the default descriptor pool of the server's process, so gRPC reflection (grpcurl list,
    describe) finds them; the stubs keep their own pool (scripts/gen_grpc.sh says why)."""
    from google.protobuf import descriptor_pool

    # TypeError: already there (another copy of the protocol, or a second call).
    with contextlib.suppress(TypeError):
        descriptor_pool.Default().AddSerializedFile(pb.DESCRIPTOR.serialized_pb)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)


def tensors_of(request: Any) -> list[Tensor]:
    """A ModelInferRequest's inputs, from raw_input_contents (tritonclient) or contents."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise v2.ProtocolError(
            400, f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs"
        )
    tensors = []
    try:
        for i, t in enumerate(request.inputs):
            shape = tuple(t.shape)
            if raw:
                data = decode_raw(t.name, t.datatype, shape, raw[i])
            elif t.datatype in CONTENTS:
                data = list(getattr(t.contents, CONTENTS[t.datatype]))
            else:
                raise TensorError(f"input {t.name!r}: unknown datatype {t.datatype!r}")
            tensors.append(Tensor(t.name, t.datatype, shape, data))
    except TensorError as exc:
        raise v2.ProtocolError(400, str(exc)) from None
    return tensors


def response_of(request: Any, answer: v2.Answer) -> pb.ModelInferResponse:
    asked = {o.name for o in request.outputs}
    response = pb.ModelInferResponse(
        model_name=request.model_name, model_version=answer.model_version, id=request.id
    )
    if answer.replayed:
        response.parameters["idempotent_replayed"].bool_param = True
    # As raw bytes, as Triton answers (tritonclient reads nothing else but BYTES contents).
    for tensor in answer.outputs:
        if asked and tensor.name not in asked:
            continue
        out = response.outputs.add(name=tensor.name, datatype=tensor.datatype)
        out.shape.extend(tensor.shape)
        response.raw_output_contents.append(encode_raw(tensor.datatype, tensor.data))
    return response


def metadata_value(context: Any, name: str) -> str | None:
    for key, value in context.invocation_metadata() if context is not None else ():
        if key == name:
            return value
    return None


def _fail(context: Any, status: int, message: str, headers: dict[str, str] | None = None):
    context.set_code(CODES.get(status, Code.UNKNOWN))
    context.set_details(message)
    retry = (headers or {}).get("Retry-After")
    if retry:
        context.set_trailing_metadata([("retry-after", retry)])


class InferenceServicer:
    """GRPCInferenceService's methods, mixed into the decision deployment (a DecisionService):
    Serve calls them by name with the request message and a `grpc_context`."""

    def _admit(self, context: Any) -> Any:
        authorization = metadata_value(context, "authorization") or ""
        kind, _, token = authorization.partition(" ")
        try:
            return self.gate.admit(token.strip() if kind.lower() == "bearer" else None)
        except Refusal as refusal:
            self.gate.on_refusal(refusal.status)
            raise v2.ProtocolError(refusal.status, refusal.detail, refusal.headers) from None

    async def ServerLive(self, request: Any, grpc_context: Any = None) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, grpc_context: Any = None) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=(await self.readiness()).status == "ok")

    async def ServerMetadata(
        self, request: Any, grpc_context: Any = None
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**v2.SERVER)

    async def ModelReady(self, request: Any, grpc_context: Any = None) -> pb.ModelReadyResponse:
        try:
            self._admit(grpc_context)
            v2.loaded_versions(self, request.name, request.version or None)
        except v2.ProtocolError as exc:
            _fail(grpc_context, exc.status, exc.message, exc.headers)
            return pb.ModelReadyResponse()
        return pb.ModelReadyResponse(ready=(await self.readiness()).status == "ok")

    async def ModelMetadata(
        self, request: Any, grpc_context: Any = None
    ) -> pb.ModelMetadataResponse:
        try:
            self._admit(grpc_context)
            versions = v2.loaded_versions(self, request.name, request.version or None)
        except v2.ProtocolError as exc:
            _fail(grpc_context, exc.status, exc.message, exc.headers)
            return pb.ModelMetadataResponse()
        return pb.ModelMetadataResponse(**v2.model_metadata(self.dataset, request.name, versions))

    async def ModelInfer(self, request: Any, grpc_context: Any = None) -> pb.ModelInferResponse:
        """Decisions for N applications, exactly as the REST infer route answers them."""
        try:
            caller = self._admit(grpc_context)
            size, limit = request.ByteSize(), self.gate.max_body
            if size > limit:
                raise v2.ProtocolError(413, f"message of {size} bytes; the limit is {limit}")
            v2.check_outputs([o.name for o in request.outputs])
            parameter = request.parameters.get(v2.IDEMPOTENCY_PARAMETER)
            key = v2.chosen_key(
                metadata_value(grpc_context, "idempotency-key"),
                parameter.string_param if parameter is not None else None,
            )
            tensors = tensors_of(request)
            answer = await v2.infer(
                self, request.model_name, request.model_version or None, tensors, caller, key
            )
        except v2.ProtocolError as exc:
            _fail(grpc_context, exc.status, exc.message, exc.headers)
            return pb.ModelInferResponse()
        return response_of(request, answer)

    async def RepositoryModelLoad(self, request: Any, grpc_context: Any = None) -> Any:
        return self._unimplemented(grpc_context, pb.RepositoryModelLoadResponse())

    async def RepositoryModelUnload(self, request: Any, grpc_context: Any = None) -> Any:
        return self._unimplemented(grpc_context, pb.RepositoryModelUnloadResponse())

    def _unimplemented(self, context: Any, empty: Any) -> Any:
        context.set_code(Code.UNIMPLEMENTED)
        context.set_details(
            "models are loaded by their registry aliases: move `champion` or `challenger` "
            "(python -m jobs.promote) and every replica loads the version within a poll"
        )
        return empty
