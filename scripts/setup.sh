#!/usr/bin/env bash
# Create .venv and install the pinned dependency set (requirements.lock) and the project.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; }

if [ ! -x .venv/bin/python ] || ! python_ok .venv/bin/python; then
  PYTHON=""
  for candidate in "${PYTHON_BIN:-}" python3.11 python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null && python_ok "$candidate"; then
      PYTHON=$candidate
      break
    fi
  done
  if [ -z "$PYTHON" ]; then
    echo "error: Python 3.11 is required (set PYTHON_BIN to its path)" >&2
    exit 1
  fi
  rm -rf .venv
  "$PYTHON" -m venv .venv
fi

# The lock's hash is recorded so an unchanged environment is not re-resolved on every run.
stamp=.venv/.installed-lock
want=$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  # Compiled at install, as pip does by default (uv does not): otherwise the first run of
  # every job and test compiles the imports of Ray, Feast, MLflow and Evidently as it goes.
  .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python -r requirements.lock
  .venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e .
  echo "$want" > "$stamp"
fi
