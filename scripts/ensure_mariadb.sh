#!/usr/bin/env bash
# Installs Debian's MariaDB server when it is missing, for the tests that
# check ML Metadata's MySQL backend against a real server. The tests start
# their own mariadbd on a temporary data dir and port (the package's service
# start is refused in containers), so nothing here starts or configures it.
set -euo pipefail
if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "MariaDB is not installed and this user cannot install it; the MySQL-backend tests will skip" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing mariadb-server (for the ML Metadata MySQL-backend tests)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q mariadb-server >/dev/null; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q mariadb-server >/dev/null
fi
