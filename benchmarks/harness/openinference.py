"""The Open Inference Protocol (V2) forms of the workload's requests: JSON bodies for REST and
ModelInferRequest messages for gRPC, ours' (the dataset spec's entity key and request fields,
as app.serving.v2.inputs_of lists them) and MLServer's (the encoded features); and the checks
of a service's answers over each, against the answers every service must give."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from app.waiting import poll
from benchmarks.harness.procs import http
from benchmarks.harness.workload import Workload, check_answer

INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
CHECKED = 20  # the first bodies of each transport, as check_ours checks /v1's


def ours_inputs(row: dict[str, Any], dataset: Any) -> list[tuple[str, str, Any]]:
    """(name, datatype, value) of each input of one application."""
    from app.serving.v2 import inputs_of

    return [(name, datatype, row[name]) for name, datatype in inputs_of(dataset)]


def v2_body(row: dict[str, Any], dataset: Any) -> str:
    """The V2 JSON inference request deciding one application (a missing value is null)."""
    inputs = [
        {"name": name, "datatype": datatype, "shape": [1], "data": [value]}
        for name, datatype, value in ours_inputs(row, dataset)
    ]
    return json.dumps({"inputs": inputs})


def ours_grpc_request(row: dict[str, Any], dataset: Any, model: str) -> Any:
    """The ModelInferRequest deciding one application, values in `contents` (a missing
    number as an FP64 NaN, which the service reads as missing)."""
    from app.serving.v2grpc import CONTENTS
    from app.serving.v2proto import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    for name, datatype, value in ours_inputs(row, dataset):
        if value is None and datatype in ("INT64", "FP64"):
            datatype, value = "FP64", math.nan
        elif value is None:
            raise ValueError(f"{name}: no value, and {datatype} has no missing value in gRPC")
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[1])
        value = value.encode() if datatype == "BYTES" else value
        getattr(tensor.contents, CONTENTS[datatype]).append(value)
    return request


def mlserver_grpc_request(features: Any, model: str) -> Any:
    """`mlserver_body`'s request as a ModelInferRequest: the encoded features, FP32 [1, n]."""
    from app.serving.v2proto import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="features", datatype="FP32", shape=[1, len(features)])
    tensor.contents.fp32_contents.extend(float(v) for v in features)
    return request


def write_grpc_messages(workload: Workload, dataset: Any) -> None:
    """Ours' and MLServer's requests for grpcload (`ours_grpc`, `mlserver_grpc` bodies)."""
    from benchmarks.harness.grpcload import write_messages
    from benchmarks.harness.workload import MLSERVER_MODEL

    assert workload.features is not None
    model = workload.settings.model_name
    messages = {
        "ours_grpc": (ours_grpc_request(r, dataset, model) for r in workload.rows),
        "mlserver_grpc": (mlserver_grpc_request(f, MLSERVER_MODEL) for f in workload.features),
    }
    for name, requests in messages.items():
        path = workload.work_dir / f"bodies_{name}.bin"
        write_messages(path, (r.SerializeToString() for r in requests))
        workload.bodies[name] = path


def grpc_outputs(response: Any) -> dict[str, list[Any]]:
    """A ModelInferResponse's outputs by name, from raw_output_contents or contents (BYTES as
    text)."""
    from app.serving.v2grpc import CONTENTS
    from app.serving.v2tensors import decode_raw

    raw, columns = list(response.raw_output_contents), {}
    for i, out in enumerate(response.outputs):
        if raw:
            values = decode_raw(out.name, out.datatype, tuple(out.shape), raw[i])
        else:
            values = list(getattr(out.contents, CONTENTS[out.datatype]))
        columns[out.name] = [v.decode() if isinstance(v, bytes) else v for v in values]
    return columns


def decision_of(columns: dict[str, list[Any]], applicant: str) -> dict[str, Any]:
    """Row 0 of ours' V2 outputs as the /v1 answer's fields check_answer reads (the applicant:
    the one asked about, which V2's outputs do not repeat)."""
    return {
        "applicant_id": applicant,
        "probability_of_default": float(columns["probability_of_default"][0]),
        "decision": columns["decision"][0],
        "reasons": json.loads(columns["reasons"][0]),
    }


def check_ours_v2_rest(name: str, url: str, workload: Workload, bodies: Path) -> None:
    """The V2 REST answers to the first bodies of `bodies` (those wrk sends) must be /v1's."""
    sent = bodies.read_text().splitlines()[:CHECKED]
    for i, body in enumerate(sent):
        status, raw = http("POST", url, body, **workload.auth)
        if status != 200:
            raise RuntimeError(f"{name} answered {status}: {raw[:300]!r}")
        outputs = {o["name"]: o["data"] for o in json.loads(raw)["outputs"]}
        check_answer(name, decision_of(outputs, workload.rows[i]["applicant_id"]), workload, i)


def grpc_stub(address: str, wait: float = 60) -> tuple[Any, Any]:
    """(channel, GRPCInferenceService stub) once the channel connected."""
    import grpc

    from app.serving.v2proto import grpc_predict_v2_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=wait)
    except grpc.FutureTimeoutError:
        channel.close()
        raise RuntimeError(f"no gRPC server at {address} after {wait:.0f} s") from None
    return channel, pb_grpc.GRPCInferenceServiceStub(channel)


def first_answer(stub: Any, request: Any, metadata: dict[str, str], wait: float = 60) -> Any:
    """The first call, retried while the ingress is not routing yet (UNAVAILABLE, NOT_FOUND)."""
    import grpc

    pending = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)

    def once() -> Any:
        try:
            return [stub.ModelInfer(request, metadata=tuple(metadata.items()), timeout=10)]
        except grpc.RpcError as exc:
            if exc.code() not in pending:
                raise
            return None

    return poll(once, "a gRPC answer", wait, 0.5)[0]


def check_grpc(name: str, address: str, metadata: dict[str, str], bodies: Path, check: Any) -> None:
    """`check(i, outputs)` of the answers to the first messages of `bodies` (grpcload's)."""
    import grpc

    from app.serving.v2proto import grpc_predict_v2_pb2 as pb
    from benchmarks.harness.grpcload import read_messages

    channel, stub = grpc_stub(address)
    try:
        for i, message in enumerate(read_messages(bodies)[:CHECKED]):
            request = pb.ModelInferRequest.FromString(message)
            if i == 0:
                response = first_answer(stub, request, metadata)
            else:
                response = stub.ModelInfer(request, metadata=tuple(metadata.items()), timeout=10)
            check(i, grpc_outputs(response))
    except grpc.RpcError as exc:
        raise RuntimeError(f"{name}: gRPC {exc.code().name}: {exc.details()}") from None
    finally:
        channel.close()


def check_ours_grpc(name: str, address: str, metadata: dict, workload: Workload) -> None:
    """Ours over gRPC must give /v1's answers (CreditModel.score's)."""

    def check(i: int, outputs: dict[str, list[Any]]) -> None:
        check_answer(name, decision_of(outputs, workload.rows[i]["applicant_id"]), workload, i)

    check_grpc(name, address, metadata, workload.bodies["ours_grpc"], check)


def check_mlserver_grpc(name: str, address: str, workload: Workload) -> None:
    """MLServer over gRPC must return the booster's own PD for the same features."""
    assert workload.expected_pd is not None

    def check(i: int, outputs: dict[str, list[Any]]) -> None:
        value, want = float(next(iter(outputs.values()))[0]), workload.expected_pd[i]
        if not math.isclose(value, want, rel_tol=1e-5, abs_tol=1e-6):
            raise RuntimeError(f"PD {value} != booster PD {want}")

    check_grpc(name, address, {}, workload.bodies["mlserver_grpc"], check)
