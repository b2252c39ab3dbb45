"""The benchmarks package: every benchmark answers --help without importing Ray, Feast or
MLflow, and the harness's pure functions (statistics, tables) give exact figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from benchmarks.harness.cli import int_list
from benchmarks.harness.stats import growth, median, medians, minutes, percentiles, slope_per_minute
from benchmarks.harness.tables import markdown_table, ratio, table, text_table, write_json
from benchmarks.harness.variants import parse_variant
from tests.utils import ROOT

SCRIPTS = (
    "gate",
    "ingest_snowflake",
    "feast_online",
    "train_xgboost",
    "drift",
    "serving",
    "soak",
    "counter_offer",
    "treeshap",
    "grpc_floor",
    "scale",
)
HEAVY = ("ray", "feast", "mlflow", "evidently", "xgboost")


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_answers_help(name):
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_importing_the_benchmarks_imports_nothing_heavy():
    packages = ("serving", "soak", "scale")
    modules = [f"benchmarks.{name}" for name in SCRIPTS if name not in packages]
    modules += [f"benchmarks.{name}.__main__" for name in packages]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_percentiles_interpolate_linearly():
    assert percentiles(range(100, -1, -1)) == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentiles(values, ("p50", "p75", "mean", "max", "p0")) == {
        "p50": 2.5,
        "p75": 3.25,
        "mean": 2.5,
        "max": 4.0,
        "p0": 1.0,
    }


def test_percentiles_of_nothing_are_nan():
    assert all(math.isnan(v) for v in percentiles([], ("p50", "mean", "max")).values())


def test_median_and_medians():
    assert median([3, 1, 2]) == 2.0
    assert median([4, 1, 3, 2]) == 2.5
    assert math.isnan(median([]))
    assert medians([{"a": 1.0, "b": 10.0}, {"a": 3.0, "b": 30.0}, {"a": 2.0, "b": 0.0}]) == {
        "a": 2.0,
        "b": 10.0,
    }


def test_growth_and_slope():
    assert growth(100, 110) == pytest.approx(0.10)
    assert growth(0, 0) == 0.0
    assert growth(0, 5) == math.inf
    assert slope_per_minute([(0, 100.0), (60, 102.0), (120, 104.0)]) == pytest.approx(2.0)
    assert math.isnan(slope_per_minute([(0, 1.0), (60, 2.0)]))


def test_minutes_bucket_times_and_end_short():
    assert minutes([0.0, 59.9, 60.0, 130.0, 150.0], 150) == [
        (0, 60, [0, 1]),
        (60, 120, [2]),
        (120, 150, [3]),
    ]


def test_text_table_aligns_columns():
    rendered = text_table(["name", "value"], [["a", "1.50"], ["longer", "10.00"]])
    assert rendered.splitlines() == [
        "name    value",
        "------  -----",
        "a        1.50",
        "longer  10.00",
    ]


def test_text_table_pads_a_short_row():
    rendered = text_table(["service", "req/s", "p50"], [["floor", "853", "1.1"], ["peer"]])
    assert rendered.splitlines()[-1] == "peer"


def test_markdown_table_aligns_per_column():
    rendered = markdown_table(
        ["target", "measured", "verdict"], [["p99", "26.8 ms", "PASS"]], "lrl"
    )
    assert rendered == ("| target | measured | verdict |\n|---|---:|---|\n| p99 | 26.8 ms | PASS |")
    assert table(["a", "b"], [[1, 2]], markdown=True) == "| a | b |\n|---|---:|\n| 1 | 2 |"


def test_ratio_text():
    assert ratio(3.0, 2.0) == "1.50x"
    assert ratio(None, 2.0) == "n/a"
    assert ratio(3.0, 0.0) == "n/a"


def test_write_json_replaces_the_file(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"ours_rps": 1.5, "peer_rps": None})
    assert json.loads(path.read_text()) == {"ours_rps": 1.5, "peer_rps": None}


def test_int_list():
    assert int_list("1,2,4") == [1, 2, 4]
    assert int_list("1_000, 10_000") == [1000, 10000]


def test_serve_levers_combine():
    variant = parse_variant("haproxy_threads_2+replicas2+monitor_off")
    assert variant.options == {"num_replicas": 2}
    assert variant.env["RAY_SERVE_HAPROXY_NBTHREAD"] == "2"
    assert variant.user_config == {"drift_monitor": False}
    assert not variant.monitor_on
    assert variant.levers == frozenset({"haproxy_threads_2", "replicas2"})


def test_scale_growth_exponent_of_linear_and_quadratic_stages():
    from benchmarks.scale.growth import exponent, exponents

    assert exponent(100_000, 2.0, 1_000_000, 20.0) == pytest.approx(1.0)
    assert exponent(100_000, 1.0, 1_000_000, 100.0) == pytest.approx(2.0)
    assert math.isnan(exponent(100, 0.0, 1000, 1.0))
    assert exponents([(1000, 4.0), (10, 1.0), (100, 2.0)]) == pytest.approx([0.30103, 0.30103])


def test_scale_table_pairs_each_stage_with_its_peer_and_growth():
    from benchmarks.scale.growth import Measured, rows_of, total_seconds

    mib = 1024 * 1024
    ours = [
        Measured("ingest", 1000, 1.0, 100 * mib, 0),
        Measured("ingest", 10_000, 10.0, 200 * mib, 0),
        Measured("train", 10_000, 5.0, 300 * mib, 0),
    ]
    peers = [Measured("ingest", 10_000, 25.0, 900 * mib, 0, peer="feast")]
    rows = rows_of(ours, peers)
    assert [r[:3] for r in rows] == [
        ["ingest", "1,000", "1.00"],
        ["ingest", "10,000", "10.00"],
        ["train", "10,000", "5.00"],
    ]
    assert rows[0][6] == "-" and rows[1][6] == "1.00"  # k from the previous size
    assert rows[1][7:] == ["feast", "25.00", "900", "2.50x"]
    assert rows[2][7:] == ["", "", "", ""]
    assert total_seconds(ours, 10_000) == 15.0


# The Open Inference Protocol rows: grpcload (the harness's wrk for gRPC), the V2 requests of
# the workload and the same-transport ratios.

APPLICATION = {
    "applicant_id": "A0000001",
    "credit_amount": 2500,
    "duration_in_month": 24,
    "purpose": "car (used)",
    "installment_rate_in_percentage_of_disposable_income": 2,
}


def wrk_result_keys() -> list[str]:
    """The keys of post_bodies.lua's WRK_RESULT line, in order."""
    import re

    lua = (ROOT / "benchmarks" / "wrk" / "post_bodies.lua").read_text()
    line = lua[lua.index("WRK_RESULT") : lua.index("\\n'")]
    return re.findall(r'"(\w+)":', line)


def test_grpcload_messages_round_trip(tmp_path):
    from benchmarks.harness.grpcload import read_messages, write_messages

    messages = [b"", b"one", bytes(range(256)) * 3]
    assert write_messages(tmp_path / "m.bin", messages) == 3
    assert read_messages(tmp_path / "m.bin") == messages
    (tmp_path / "cut.bin").write_bytes((tmp_path / "m.bin").read_bytes()[:-1])
    with pytest.raises(ValueError):
        read_messages(tmp_path / "cut.bin")


def test_grpcload_result_has_wrks_keys():
    from benchmarks.harness.grpcload import Tally, result_of

    tally = Tally(latencies_ms=[1.0, 2.0, 3.0, 4.0], timeouts=1)
    tally.failed(5, "unknown applicant")
    result = result_of(tally, 2.0)
    assert list(result) == wrk_result_keys()
    assert result["requests"] == 4 and result["rps"] == 2.0 and result["p50_ms"] == 2.5
    assert (result["non200"], result["timeouts"], result["first_bad_status"]) == (1, 1, 5)
    assert result_of(Tally(), 1.0)["p99_ms"] == 0.0


def test_grpcload_loads_a_grpc_server_and_counts_its_errors(tmp_path):
    """The generator in its own process against a local server: every message sent, the bad
    one answered NOT_FOUND and counted as wrk counts a non-200."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    from benchmarks.harness import grpcload
    from benchmarks.harness.openinference import INFER_METHOD

    seen: set[bytes] = set()

    def infer(request: bytes, context) -> bytes:
        seen.add(request)
        if dict(context.invocation_metadata()).get("authorization") != "Bearer t":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no token")
        if request == b"bad":
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown applicant")
        return request

    service, method = INFER_METHOD.strip("/").split("/")
    handler = grpc.unary_unary_rpc_method_handler(infer)  # bytes in, bytes out
    server = grpc.server(ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(service, {method: handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        grpcload.write_messages(tmp_path / "m.bin", [b"a", b"bad", b"c"])
        result, output = grpcload.run(
            f"127.0.0.1:{port}",
            INFER_METHOD,
            tmp_path / "m.bin",
            4,
            1,
            {"authorization": "Bearer t"},
            2,
        )
    finally:
        server.stop(None)
    assert seen == {b"a", b"bad", b"c"}
    assert list(result) == wrk_result_keys()
    assert result["requests"] > 30 and result["rps"] > 30
    assert 0 < result["non200"] < result["requests"]
    assert result["first_bad_status"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert result["timeouts"] == result["read_errors"] == 0
    assert 'WRK_FIRST_BAD status=5 body="unknown applicant"' in output


def decided(tensors):
    from app.serving.bodies import api_models
    from app.serving.v2 import requests_of
    from tests.utils.datasets import german

    (request,) = requests_of(tensors, api_models(german()))
    return request.model_dump(by_alias=True, exclude_none=True)


def test_the_v2_rest_body_and_the_grpc_request_decide_the_v1_body():
    from app.serving.v2grpc import tensors_of
    from app.serving.v2tensors import Tensor
    from benchmarks.harness.openinference import ours_grpc_request, v2_body
    from benchmarks.harness.workload import ours_body
    from tests.utils.datasets import german

    v1 = ours_body(APPLICATION)
    body = json.loads(v2_body(APPLICATION, german()))
    rest = [Tensor(t["name"], t["datatype"], tuple(t["shape"]), t["data"]) for t in body["inputs"]]
    assert decided(rest) == v1
    request = ours_grpc_request(APPLICATION, german(), "credit_risk")
    assert request.model_name == "credit_risk"
    assert decided(tensors_of(request)) == v1


def test_a_missing_number_goes_over_grpc_as_nan():
    from benchmarks.harness.openinference import ours_grpc_request
    from tests.utils.datasets import german

    request = ours_grpc_request(APPLICATION | {"duration_in_month": None}, german(), "m")
    (tensor,) = [t for t in request.inputs if t.name == "duration_in_month"]
    assert tensor.datatype == "FP64" and math.isnan(tensor.contents.fp64_contents[0])


def test_grpc_outputs_read_raw_and_typed_contents_alike():
    from app.serving.v2proto import grpc_predict_v2_pb2 as pb
    from app.serving.v2tensors import encode_raw
    from benchmarks.harness.openinference import decision_of, grpc_outputs, mlserver_grpc_request

    columns = {"probability_of_default": ("FP64", [0.25]), "decision": ("BYTES", ["approve"])}
    columns["reasons"] = ("BYTES", [json.dumps([{"code": "R1"}])])
    raw, typed = pb.ModelInferResponse(), pb.ModelInferResponse()
    for name, (datatype, values) in columns.items():
        raw.outputs.add(name=name, datatype=datatype, shape=[1])
        raw.raw_output_contents.append(encode_raw(datatype, values))
        out = typed.outputs.add(name=name, datatype=datatype, shape=[1])
        contents = out.contents.fp64_contents if datatype == "FP64" else out.contents.bytes_contents
        contents.extend(v.encode() if isinstance(v, str) else v for v in values)
    assert grpc_outputs(raw) == grpc_outputs(typed) == {n: v for n, (_, v) in columns.items()}
    assert decision_of(grpc_outputs(raw), "A1") == {
        "applicant_id": "A1",
        "probability_of_default": 0.25,
        "decision": "approve",
        "reasons": [{"code": "R1"}],
    }
    features = mlserver_grpc_request([0.5, 1.25, 3.0], "credit-risk").inputs[0]
    assert (features.datatype, list(features.shape)) == ("FP32", [1, 3])
    assert list(features.contents.fp32_contents) == [0.5, 1.25, 3.0]


def test_transports_and_their_rows():
    import argparse

    from benchmarks.serving.transports import key_of, ours_label, parse_transports

    assert parse_transports("v2,grpc") == ("v2", "grpc")
    assert parse_transports("none") == parse_transports("") == ()
    with pytest.raises(argparse.ArgumentTypeError):
        parse_transports("v2,soap")
    assert key_of("ours:default", "v1") == "ours:default"
    assert key_of("ours:default", "grpc") == "ours:default:grpc"
    assert ours_label(parse_variant("default"), "grpc") == "ours gRPC"
    assert ours_label(parse_variant("monitor_off")) == "ours monitor_off /v1"


def test_same_transport_ratios():
    from benchmarks.serving.measure import Measured, WrkRun
    from benchmarks.serving.transports import transport_ratios

    def measured(name: str, rps: float, seq_p50: float) -> Measured:
        load = WrkRun(16, {"rps": rps, "p50_ms": 1.0}, "")
        sequential = WrkRun(1, {"rps": 1 / seq_p50, "p50_ms": seq_p50}, "")
        return Measured(name, 15, load, sequential, (0, 0), (0, 0), 1, {})

    results = {
        "ours:default": measured("ours /v1", 2000, 2.0),
        "ours:default:v2": measured("ours V2 REST", 1800, 2.2),
        "ours:default:grpc": measured("ours gRPC", 1500, 2.5),
        "mlserver": measured("MLServer V2 REST", 1200, 1.1),
        "mlserver:grpc": measured("MLServer gRPC", 1000, 1.0),
    }
    rows = transport_ratios(results, [parse_variant("default"), parse_variant("monitor_off")])
    by = {(r["ours"], r["against"]): r for r in rows}
    assert list(by) == [
        ("ours V2 REST", "MLServer V2 REST"),
        ("ours gRPC", "MLServer gRPC"),
        ("ours V2 REST", "ours /v1"),
        ("ours gRPC", "ours /v1"),
    ]  # no seed stack measured: no row for it
    assert by[("ours gRPC", "MLServer gRPC")]["rps_ratio"] == pytest.approx(1.5)
    assert by[("ours V2 REST", "MLServer V2 REST")]["seq_p50_ratio"] == pytest.approx(2.0)
