#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, a virtualenv with
# resurgo and its test dependencies, and the real Claude Code CLI from npm.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v stress-ng >/dev/null 2>&1 || need_apt+=(stress-ng)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || need_apt+=(python3)
# Debian's python3 needs python3-venv for `python3 -m venv` (ensurepip)
if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then need_apt+=(python3-venv); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root or sudo to install: ${need_apt[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.resurgo-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing resurgo and its dev dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev,bench,sdk,otel,crypto]"
  touch "$stamp"
fi

# The CLI version the corpus, the mock API and the tests were recorded against
# (docs/mock-api.md); set RESURGO_CLAUDE_VERSION=latest to try a newer one.
CLAUDE_VERSION=${RESURGO_CLAUDE_VERSION:-2.1.197}
CLAUDE_BIN=.tools/npm/node_modules/.bin/claude
have=$("$CLAUDE_BIN" --version 2>/dev/null || true)
if [ -z "$have" ] || { [ "$CLAUDE_VERSION" != latest ] && [[ "$have" != "$CLAUDE_VERSION "* ]]; }; then
  echo "setup: installing the Claude Code CLI $CLAUDE_VERSION from npm"
  mkdir -p .tools/npm
  npm install --prefix .tools/npm --no-audit --no-fund --loglevel=error "@anthropic-ai/claude-code@$CLAUDE_VERSION" >/dev/null
  # npm 11 may skip install scripts it has not been told to allow; the native binary is
  # linked by the package's postinstall, so run it ourselves when it did not run.
  if ! "$CLAUDE_BIN" --version >/dev/null 2>&1; then
    (cd .tools/npm/node_modules/@anthropic-ai/claude-code && node install.cjs)
  fi
fi
echo "setup: claude $("$CLAUDE_BIN" --version)"

# The newest CLI version resurgo is tested with (the one claude-agent-sdk bundles), in a second
# prefix: tests marked cli_versions run against both (docs/cli-versions.md; `resurgo doctor`
# reports the same range).  RESURGO_CLAUDE_LATEST points the tests at another install.
CLAUDE_LATEST_VERSION=${RESURGO_CLAUDE_LATEST_VERSION:-2.1.332}
LATEST_BIN=.tools/npm-latest/node_modules/.bin/claude
have=$("$LATEST_BIN" --version 2>/dev/null || true)
if [[ "$have" != "$CLAUDE_LATEST_VERSION "* ]]; then
  echo "setup: installing the Claude Code CLI $CLAUDE_LATEST_VERSION from npm (second prefix)"
  mkdir -p .tools/npm-latest
  npm install --prefix .tools/npm-latest --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_LATEST_VERSION" >/dev/null
  if ! "$LATEST_BIN" --version >/dev/null 2>&1; then
    (cd .tools/npm-latest/node_modules/@anthropic-ai/claude-code && node install.cjs)
  fi
fi
echo "setup: claude (latest tested) $("$LATEST_BIN" --version)"
