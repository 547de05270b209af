#!/usr/bin/env bash
# Installs Debian's Chromium when it is missing, for the tests that load the
# run report in a real headless browser (tests/browser.py).
exec "$(dirname "$0")/ensure_debian_package.sh" chromium chromium \
  "the run report's browser tests"
