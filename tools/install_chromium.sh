#!/usr/bin/env sh
# Installs Debian's chromium for the test that renders the demo report in a real headless browser.
# Without root it says what to run; that test is then skipped with the reason.
set -eu
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "the report test needs a browser: sudo apt-get install chromium (it is skipped without one)" >&2
fi
