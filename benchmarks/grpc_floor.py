"""What a gRPC call costs before any decision work: the same `GRPCInferenceService` servicer,
answering ModelInfer with a fixed response, on a bare `grpc.aio` server in one process (how
MLServer answers gRPC) and behind Ray Serve's gRPC ingress as the service ships (direct
ingress, HAProxy, 2 replicas). The difference is the ceiling Serve puts on ours' gRPC row in
`benchmarks.serving`.

    python -m benchmarks.grpc_floor [--duration 20] [--repeats 3] [--replicas 2]

Each server runs in its own process; the load is benchmarks.harness.grpcload (16 calls in
flight over 4 channels), the servers alternating within each repeat; medians are printed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from benchmarks.harness import grpcload
from benchmarks.harness.cli import parser
from benchmarks.harness.procs import ROOT, ServiceProcess, child_env
from benchmarks.harness.tables import markdown_table, ratio

METHOD = "/inference.GRPCInferenceService/ModelInfer"
SERVICER = "app.serving.v2grpc.add_servicer"
APP_NAME = "floor"
OPTIONS = [
    ("--duration", float, 20.0, "seconds per load run"),
    ("--repeats", int, 3, "runs of each server, alternating"),
    ("--replicas", int, 2, "Serve replicas"),
    ("--connections", int, 16, "calls in flight"),
    ("--channels", int, 4, "gRPC channels (connections)"),
    ("--serve", str, "", "internal: run one server (bare|serve) on --port"),
    ("--port", int, 0, "internal: the server's port"),
]


def request() -> Any:
    """A ModelInferRequest the size of one of ours: an applicant and four request fields."""
    from app.serving.v2proto import grpc_predict_v2_pb2 as pb

    message = pb.ModelInferRequest(model_name="credit_risk", id="r-1")
    for name, datatype, field, value in (
        ("applicant_id", "BYTES", "bytes_contents", b"A0000688"),
        ("credit_amount", "INT64", "int64_contents", 2862),
        ("duration_in_month", "INT64", "int64_contents", 36),
        ("purpose", "BYTES", "bytes_contents", b"car (new)"),
        ("installment_rate_in_percentage_of_disposable_income", "INT64", "int64_contents", 4),
    ):
        tensor = message.inputs.add(name=name, datatype=datatype, shape=[1])
        getattr(tensor.contents, field).append(value)
    return message


def response() -> Any:
    """A ModelInferResponse the size of one of ours (a decline with four reasons)."""
    from app.serving.v2proto import grpc_predict_v2_pb2 as pb

    reasons = b'[{"code": "R01", "feature": "status_of_existing_checking_account", "contri'
    reasons += b'bution": 0.306375, "description": "Checking account balance below 200 DM"}]' * 4
    answer = pb.ModelInferResponse(model_name="credit_risk", model_version="1", id="r-1")
    for name, datatype, field, value in (
        ("probability_of_default", "FP64", "fp64_contents", 0.5837672266796633),
        ("decision", "BYTES", "bytes_contents", b"decline"),
        ("model_version", "INT64", "int64_contents", 1),
        ("variant", "BYTES", "bytes_contents", b"champion"),
        ("reasons", "BYTES", "bytes_contents", reasons),
        ("counter_offer", "BYTES", "bytes_contents", b"null"),
    ):
        tensor = answer.outputs.add(name=name, datatype=datatype, shape=[1])
        getattr(tensor.contents, field).append(value)
    return answer


class FixedInfer:
    """The servicer both servers run: ModelInfer answers one prebuilt message whatever it is
    asked (gRPC has parsed the request, as for any servicer)."""

    def __init__(self) -> None:
        self.answer = response()

    async def ModelInfer(self, request: Any, context: Any = None) -> Any:
        return self.answer


def serve_bare(port: int) -> None:
    """A grpc.aio server with the servicer, in this process, until SIGTERM."""
    import grpc

    from app.serving.v2grpc import add_servicer
    from app.serving.v2proto.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceServicer

    class Bare(FixedInfer, GRPCInferenceServiceServicer):
        """FixedInfer's ModelInfer; the protocol's other methods unimplemented."""

    async def run() -> None:
        server = grpc.aio.server()
        add_servicer(Bare(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("SERVER_READY", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(1)

    asyncio.run(run())


def serve_ray(port: int, replicas: int) -> None:
    """Serve with the shipped ingress (settings' serve_ingress) and the servicer in `replicas`
    replicas, on a local Ray of 2 CPUs, until SIGTERM."""
    from app.config import load_settings
    from app.localservices import free_port
    from app.runtime import serve_environment

    # Before Ray is imported: Serve reads its RAY_SERVE_* constants at import.
    os.environ.update(serve_environment(load_settings(), local=True))
    import ray
    from ray import serve

    # By its module's name, not __main__'s, so the replicas import it rather than unpickle it.
    from benchmarks.grpc_floor import FixedInfer as Servicer

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    grpc_options = {"port": port, "grpc_servicer_functions": [SERVICER]}
    http_options = {"host": "127.0.0.1", "port": free_port()}  # HAProxy binds it: not 0
    serve.start(http_options=http_options, grpc_options=grpc_options)
    deployment = serve.deployment(Servicer, name="FixedInfer")
    app = deployment.options(num_replicas=replicas, max_ongoing_requests=32).bind()
    serve.run(app, name=APP_NAME, route_prefix="/")
    print("SERVER_READY", flush=True)
    try:
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


def start(kind: str, args: Any, work: Path) -> ServiceProcess:
    from app.localservices import free_port

    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.grpc_floor", "--serve", kind, "--port", str(port)]
    argv += ["--replicas", str(args.replicas)]
    service = ServiceProcess.launch(
        kind, argv, log_path=work / f"{kind}.log", env=child_env(PYTHONPATH=str(ROOT)), cwd=ROOT
    )
    service.grpc = f"127.0.0.1:{port}"
    service.wait_ready(lambda: bool(service.log_lines("SERVER_READY")), 180)
    return service


def measure(kind: str, args: Any, work: Path, messages: Path) -> dict[str, Any]:
    """One load run against a fresh server of `kind`, after 3 s of warm-up."""
    service = start(kind, args, work)
    try:
        load = (service.grpc, METHOD, messages, args.connections)
        options = ({"application": APP_NAME}, args.channels)
        grpcload.run(*load, 3, *options)
        result, _ = grpcload.run(*load, args.duration, *options)
        if result["non200"] or result["read_errors"] or result["timeouts"]:
            raise RuntimeError(f"{kind}: failed calls: {result}")
        return result
    finally:
        service.stop()


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, OPTIONS).parse_args(argv)
    if args.serve == "bare":
        serve_bare(args.port)
        return 0
    if args.serve == "serve":
        serve_ray(args.port, args.replicas)
        return 0
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "serve": []}
    with tempfile.TemporaryDirectory(prefix="grpc_floor_") as tmp:
        work = Path(tmp)
        messages = work / "messages.bin"
        grpcload.write_messages(messages, [request().SerializeToString()])
        for repeat in range(args.repeats):
            for kind in ("bare", "serve") if repeat % 2 == 0 else ("serve", "bare"):
                runs[kind].append(result := measure(kind, args, work, messages))
                print(
                    f"  {kind} run {repeat + 1}: {result['rps']:,.0f} calls/s, "
                    f"p50 {result['p50_ms']:.2f} ms",
                    flush=True,
                )
    report(runs, args)
    return 0


def report(runs: dict[str, list[dict[str, Any]]], args: Any) -> None:
    median = {
        k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50_ms")}
        for k, v in runs.items()
    }
    labels = {"bare": "grpc.aio, one process", "serve": f"Ray Serve, {args.replicas} replicas"}
    rows = [[labels[k], f"{m['rps']:,.0f}", f"{m['p50_ms']:.2f}"] for k, m in median.items()]
    print(markdown_table(["server", "calls/s (median)", "p50 ms"], rows))
    print(
        f"Serve / bare: {ratio(median['serve']['rps'], median['bare']['rps'])} calls/s "
        f"({args.repeats} runs of {args.duration:.0f} s each, {args.connections} in flight)"
    )


if __name__ == "__main__":
    sys.exit(main())
