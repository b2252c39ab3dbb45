#!/usr/bin/env bash
# README command 2: set up, then lint and run the whole test suite.
# The tests start their own fakesnow server and a private Redis (they need `redis-server`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
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
exec .venv/bin/python -m pytest "$@"
