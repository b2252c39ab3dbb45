"""Benchmarks against the peers named in docs/benchmarks.md: `python -m benchmarks.<name>`."""
