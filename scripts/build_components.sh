#!/usr/bin/env bash
# Rebuild the custom Streamlit components' built assets (ui/components/*/build) from npm.
# Needs Node 18+ and npm at build time only: the app serves the committed build/ folders.
#   bash scripts/build_components.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for frontend in ui/components/*/frontend; do
  echo "== ${frontend}"
  (cd "${frontend}" && npm ci --no-audit --no-fund && npm run build)
done
