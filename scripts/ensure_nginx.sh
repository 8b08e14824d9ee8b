#!/usr/bin/env bash
# Makes sure nginx exists for `make serve` (N app processes behind it) and for the config check in
# tests/test_deploy.py: one already installed, else (as root on Debian/Ubuntu) apt-get install nginx-light.
# Without it, `make serve` cannot start and the test skips its syntax check, saying why.
set -uo pipefail
for p in "$(command -v nginx 2>/dev/null)" /usr/sbin/nginx; do
  [ -n "$p" ] && [ -x "$p" ] && { echo "nginx: $p"; exit 0; }
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "nginx: installing nginx-light with apt-get" >&2
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 || \
     { apt-get update -qq >/dev/null && \
       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null; }; then
    echo "nginx: /usr/sbin/nginx"; exit 0
  fi
fi
echo "nginx: not installed and could not be installed (Debian: apt-get install nginx-light)" >&2
exit 1
