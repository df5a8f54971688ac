#!/usr/bin/env bash
# The browser suite drives Debian's Chromium (no browser download is possible on these machines).
# Finds it, installs it when this shell may use apt (root), or stops at once with the one command to run.
set -euo pipefail
chromium="${SKYLIFT_CHROMIUM:-/usr/bin/chromium}"
[ -x "$chromium" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests (once)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "the browser tests need Chromium at $chromium; install it with: sudo apt-get install -y chromium" >&2
echo "(or point SKYLIFT_CHROMIUM at an installed Chromium)" >&2
exit 1
