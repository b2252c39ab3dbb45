"""The Open Inference Protocol's pure parts: raw tensor encodings (checked against
tritonclient's own codec), the gRPC messages' tensors, and the status -> gRPC code map."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from app.serving import v2
from app.serving.v2grpc import CODES, response_of, tensors_of
from app.serving.v2proto import grpc_predict_v2_pb2 as pb
from app.serving.v2tensors import Tensor, TensorError, decode_raw, encode_raw, flatten


def test_raw_bytes_are_tritonclients_encoding():
    words = np.array([b"car", b"", "éducation".encode()], dtype=object)
    raw = serialize_byte_tensor(words).item()
    assert decode_raw("purpose", "BYTES", (3,), raw) == list(words)
    assert deserialize_bytes_tensor(encode_raw("BYTES", ["car", "", "éducation"])).tolist() == [
        b"car",
        b"",
        "éducation".encode(),
    ]
    numbers = np.array([1.5, float("nan"), -2.0])
    assert np.allclose(
        decode_raw("x", "FP64", (3,), numbers.tobytes()), numbers.tolist(), equal_nan=True
    )
    assert decode_raw("n", "INT32", (2, 1), np.array([7, 8], "<i4").tobytes()) == [7, 8]
    assert np.frombuffer(encode_raw("INT64", [3, 4]), "<i8").tolist() == [3, 4]


@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "message"),
    [
        ("INT64", (2,), b"\0" * 12, "12 raw bytes for shape [2] of INT64 (expected 16)"),
        ("BYTES", (1,), b"\x05\0\0\0ab", "longer than its data"),
        ("BYTES", (2,), b"\x01\0\0\0a", "1 values for shape [2]"),
        ("COMPLEX", (1,), b"", "unknown datatype 'COMPLEX'"),
    ],
)
def test_bad_raw_tensors_are_named(datatype, shape, raw, message):
    with pytest.raises(TensorError, match="input 'x'") as error:
        decode_raw("x", datatype, shape, raw)
    assert message in str(error.value)


def test_shapes_other_than_one_value_per_row_are_refused():
    assert Tensor("x", "INT64", (3, 1), [1, 2, 3]).rows == 3
    with pytest.raises(TensorError, match=r"shape \[2, 2\]; expected \[N\] or \[N, 1\]"):
        _ = Tensor("x", "INT64", (2, 2), [1, 2, 3, 4]).rows
    assert flatten([[1], [2]]) == [1, 2]


def test_grpc_tensors_from_contents_or_raw_and_raw_outputs():
    request = pb.ModelInferRequest(model_name="m", id="7")
    ids = request.inputs.add(name="applicant_id", datatype="BYTES", shape=[2])
    ids.contents.bytes_contents.extend([b"A1", b"A2"])
    amounts = request.inputs.add(name="credit_amount", datatype="INT64", shape=[2, 1])
    amounts.contents.int64_contents.extend([100, 200])
    assert [t.data for t in tensors_of(request)] == [[b"A1", b"A2"], [100, 200]]
    request.raw_input_contents.append(
        serialize_byte_tensor(np.array([b"A1", b"A2"], object)).item()
    )
    with pytest.raises(v2.ProtocolError, match="1 raw_input_contents for 2 inputs"):
        tensors_of(request)
    answer = v2.Answer([Tensor("decision", "BYTES", (2,), ["approve", "decline"])], "3")
    response = response_of(request, answer)
    assert (response.id, response.model_version) == ("7", "3")
    decoded = deserialize_bytes_tensor(response.raw_output_contents[0]).tolist()
    assert decoded == [b"approve", b"decline"]


def test_every_refusal_has_its_grpc_code():
    assert CODES[400] == grpc.StatusCode.INVALID_ARGUMENT
    assert CODES[401] == grpc.StatusCode.UNAUTHENTICATED
    assert CODES[403] == grpc.StatusCode.PERMISSION_DENIED
    assert CODES[404] == grpc.StatusCode.NOT_FOUND
    assert CODES[429] == CODES[413] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert CODES[503] == grpc.StatusCode.UNAVAILABLE


def test_a_version_that_is_not_loaded_is_named_with_what_is():
    loaded = {"champion": "4", "challenger": None}
    assert v2.pinned_variant(loaded, "m", "4") == "champion"
    with pytest.raises(v2.ProtocolError, match=r"'5' of 'm' is not loaded; loaded: 4 \(champion\)"):
        v2.pinned_variant(loaded, "m", "5")
    with pytest.raises(v2.ProtocolError, match="differ"):
        v2.chosen_key("a", "b")
