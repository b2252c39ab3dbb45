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
settle() {
  if [ "$1" = 5 ]; then return 0; fi
  collected=1
  return "$1"
}
tier() {
  local code=0
  .venv/bin/python -m pytest "$@" || code=$?
  settle "$code"
}
nothing_collected() {
  [ "$collected" = 1 ] || { echo "error: no test matched: ${args[*]}" >&2; exit 5; }
}
unit() { tier -m "not integration" -n auto "$@"; }
# The integration tests share one Ray and its services, so they run in turn; the few that start
# a Ray of their own (own_ray: the two-node loop, the main jobs) wait on their subprocesses
# most of the time and run in a second pytest beside them, their output shown after.
# --durations: the slowest tests in every full run's output, where the suite's time goes.
integration() {
  local own_log own_pid own=0 shared=0
  own_log="$(mktemp)"
  .venv/bin/python -m pytest -m integration --ray-group own --durations=20 "$@" >"$own_log" 2>&1 &
  own_pid=$!
  # Background jobs ignore Ctrl-C: stop this one with the script.
  trap 'kill "$own_pid" 2>/dev/null || true' EXIT
  .venv/bin/python -m pytest -m integration --ray-group shared --durations=20 "$@" || shared=$?
  wait "$own_pid" || own=$?
  trap - EXIT
  echo "--- the tests that start a Ray of their own, run beside the ones above:"
  cat "$own_log"
  rm -f "$own_log"
  settle "$own" && settle "$shared"
}
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
integration "${args[@]}"
nothing_collected
