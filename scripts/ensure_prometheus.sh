#!/usr/bin/env bash
# Installs Debian's Prometheus (with promtool) when it is missing, for the
# tests that check the serving rules and dashboard with promtool and scrape
# the TF Serving double with a real server (tests/test_serving_monitoring.py).
# The package's own service is not used: the tests start their own.
exec "$(dirname "$0")/ensure_debian_package.sh" prometheus promtool \
  "the serving monitoring tests"
