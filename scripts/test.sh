#!/usr/bin/env bash
# README command 2: set up, then lint and run the whole test suite.
# The tests start their own fakesnow server and a private Redis (they need `redis-server`).
#   bash scripts/test.sh --fast   the inner loop: lint and the tests that need no Ray or service
# Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
args=()
for arg in "$@"; do
  if [ "$arg" = "--fast" ]; then fast=1; else args+=("$arg"); fi
done

bash scripts/setup.sh
if [ "$fast" = 1 ]; then
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  exec .venv/bin/python -m pytest -m "not integration" "${args[@]}"
fi
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing redis-server (the Redis tests start a private instance)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "error: the tests need redis-server on PATH (e.g. sudo apt-get install redis-server)" >&2
    exit 1
  fi
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# The slowest tests in every full run's output: where the suite's time goes.
exec .venv/bin/python -m pytest --durations=20 "${args[@]}"
