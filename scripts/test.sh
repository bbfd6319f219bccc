#!/usr/bin/env bash
# The test command: set up (idempotent), then run the default suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not integration"`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export RESURGO_CLAUDE="${RESURGO_CLAUDE:-$PWD/.tools/npm/node_modules/.bin/claude}"
# the newest tested CLI, for the tests marked cli_versions (docs/cli-versions.md)
export RESURGO_CLAUDE_LATEST="${RESURGO_CLAUDE_LATEST:-$PWD/.tools/npm-latest/node_modules/.bin/claude}"
export PATH="$PWD/.venv/bin:$PATH"
.venv/bin/ruff check --quiet src tests bench scripts examples
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
