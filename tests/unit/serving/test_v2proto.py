"""The committed gRPC stubs are the proto's: compiling app/serving/v2proto/grpc_predict_v2.proto
now gives the descriptor the stubs carry (else: bash scripts/gen_grpc.sh)."""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from app.serving.v2proto import grpc_predict_v2_pb2 as pb
from tests.utils import ROOT

PROTO = "app/serving/v2proto/grpc_predict_v2.proto"


def test_the_stubs_are_generated_from_the_committed_proto(tmp_path):
    out = tmp_path / "descriptor.pb"
    assert protoc.main(["protoc", f"-I{ROOT}", f"--descriptor_set_out={out}", PROTO]) == 0
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    _drop_json_names(compiled.message_type)  # protoc adds them; Python's gencode leaves them out
    committed = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert compiled == committed, "stale gRPC stubs: run bash scripts/gen_grpc.sh"
    service = committed.service[0]
    assert (committed.package, service.name) == ("inference", "GRPCInferenceService")
    assert {"ServerLive", "ServerReady", "ModelReady", "ModelMetadata", "ModelInfer"} <= {
        m.name for m in service.method
    }


def _drop_json_names(messages) -> None:
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _drop_json_names(message.nested_type)
