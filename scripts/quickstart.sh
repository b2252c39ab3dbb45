#!/usr/bin/env bash
# README command 1: set up, then run the main job on embedded defaults (no services needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m jobs.pipeline "$@"
