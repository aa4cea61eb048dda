#!/usr/bin/env bash
# The test command of the README: every test but the GPU ones (unit, app, slow, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
# --durations: the slowest tests are listed at the end of every run (CI logs show where time goes).
exec python -m pytest -m "not gpu" --timeout=900 --durations=25 "$@"
