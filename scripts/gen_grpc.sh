#!/usr/bin/env bash
# Regenerate the Open Inference Protocol's gRPC stubs (app/serving/v2proto) from KServe's
# grpc_predict_v2.proto, with the grpcio-tools the dev dependencies pin (requirements.lock).
# The generated modules are committed: nothing is compiled on a node at start.
#
# The messages are built into a private descriptor pool (the sed below): tritonclient and
# KServe's client define the same `inference.*` symbols in the default pool, and a process
# that imports either beside these stubs (the tests, a user's client) would fail with
# "duplicate symbol". The server adds the file to the default pool for gRPC reflection
# (app.serving.v2grpc.add_servicer), where nothing else defines it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=app/serving/v2proto
.venv/bin/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \
  "$out/grpc_predict_v2.proto"
sed -i 's/^DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(/POOL = _descriptor_pool.DescriptorPool()\nDESCRIPTOR = POOL.AddSerializedFile(/' \
  "$out/grpc_predict_v2_pb2.py"
grep -q '^POOL = _descriptor_pool.DescriptorPool()' "$out/grpc_predict_v2_pb2.py"
.venv/bin/ruff format --quiet "$out"
