#!/usr/bin/env bash
# Create .venv and install prefkit with the extras given (default: dev), once per change
# of pyproject.toml. Safe to run repeatedly; used by demo.sh, test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-dev}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
STAMP=".venv/.prefkit-installed-$EXTRAS"
WANT="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
  echo "$WANT" > "$STAMP"
fi
# Headless Chromium renders the inspect HTML report in tests/report/test_inspect_browser.py
# (Debian package `chromium`). Install it when missing; never fail set-up over it.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    echo "setup: installing chromium (for the HTML report test)"
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; then
      $SUDO apt-get update -q >/dev/null 2>&1 || true
      $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || true
    fi
  fi
  if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    echo "setup: WARNING: chromium is missing and apt-get could not install it (needs apt-get," >&2
    echo "setup: root or passwordless sudo, and a network); the browser report test skips (CI fails)." >&2
  fi
fi
