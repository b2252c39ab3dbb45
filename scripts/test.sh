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
# The tests that need no Ray or service are independent of each other: they run on every core
# (pytest-xdist). The integration tests share one Ray and its services, so they run in turn.
# pytest's exit 5 is "no tests collected": arguments that select tests of one tier only.
collected=0
tier() {
  local code=0
  .venv/bin/python -m pytest "$@" || code=$?
  if [ "$code" = 5 ]; then return 0; fi
  collected=1
  return "$code"
}
nothing_collected() {
  [ "$collected" = 1 ] || { echo "error: no test matched: ${args[*]}" >&2; exit 5; }
}
unit() { tier -m "not integration" -n auto "$@"; }
if [ "$fast" = 1 ]; then
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  unit "${args[@]}"
  nothing_collected
  exit
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
unit "${args[@]}"
# The slowest tests in every full run's output: where the suite's time goes.
tier -m integration --durations=20 "${args[@]}"
nothing_collected
