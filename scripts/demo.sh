#!/usr/bin/env bash
# The main job on a fresh machine: set up, then a supervised demo batch through the real
# Claude Code CLI. Without ANTHROPIC_API_KEY it runs against the bundled API stand-in
# with faults injected.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export RESURGO_CLAUDE="${RESURGO_CLAUDE:-$PWD/.tools/npm/node_modules/.bin/claude}"
exec .venv/bin/resurgo demo "$@"
