#!/usr/bin/env bash
# Installs Debian's nginx when it is missing, for the tests that run the TLS
# front's own nginx.conf in front of the TF Serving double
# (tests/test_serving_front.py). The package's own service is not started.
exec "$(dirname "$0")/ensure_debian_package.sh" nginx nginx \
  "the TLS front's nginx tests"
