#!/usr/bin/env bash
# Install (with test tools) and run the linter and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh teacher,deploy,dev
.venv/bin/ruff check src tests benchmarks
exec .venv/bin/pytest "$@"
