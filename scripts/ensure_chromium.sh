#!/usr/bin/env bash
# Makes sure a Chromium exists for the browser tests, in this order:
# 1. one already installed (CHROMIUM_PATH, chromium, chromium-browser, google-chrome);
# 2. as root on Debian/Ubuntu: apt-get install chromium;
# 3. Playwright's own download (works for users with internet access).
# Prints the browser it found; tests/e2e/conftest.py looks it up the same way.
set -uo pipefail
PY=${1:-.venv/bin/python}

found() { echo "chromium: $1"; exit 0; }
for c in "${CHROMIUM_PATH:-}" chromium chromium-browser google-chrome; do
  [ -n "$c" ] && p=$(command -v "$c" 2>/dev/null) && [ -n "$p" ] && found "$p"
done

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "chromium: installing with apt-get" >&2
  if apt-get update -qq >/dev/null && \
     DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    p=$(command -v chromium) && found "$p"
  fi
  echo "chromium: apt-get did not install it" >&2
fi

if "$PY" -m playwright install chromium >/dev/null 2>&1; then
  found "playwright's bundled chromium"
fi
echo "chromium: none found and none could be installed; browser tests will fail" >&2
exit 1
