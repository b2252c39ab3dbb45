"""The Open Inference Protocol's gRPC messages and service (generated: scripts/gen_grpc.sh)."""
