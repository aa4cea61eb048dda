#!/usr/bin/env bash
# The test command of the README: every test but the GPU ones (unit, app, slow, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
exec python -m pytest -m "not gpu" --timeout=900 "$@"
