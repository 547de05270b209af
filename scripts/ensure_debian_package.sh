#!/usr/bin/env bash
# Usage: ensure_debian_package.sh PACKAGE PROGRAM WHAT-FOR
# Installs Debian's PACKAGE when PROGRAM is not on the PATH (nor in
# /usr/sbin), as root or through sudo, for the tests that run against the
# real program. Without a way to install it, it says so and exits 0: those
# tests then skip, unless CI forbids that (REQUIRE_MARIADB, REQUIRE_CHROMIUM,
# REQUIRE_NGINX, REQUIRE_PROMETHEUS).
set -euo pipefail
package="$1" program="$2" purpose="$3"
if command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "$package is not installed and this user cannot install it; $purpose will skip" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing $package (for $purpose)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q "$package" >/dev/null; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q "$package" >/dev/null
fi
