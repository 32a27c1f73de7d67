#!/usr/bin/env bash
# The whole test suite: installs what the tests need when missing, then runs every test once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
[ -d dist ] || npm run build
npx vitest run "$@"
