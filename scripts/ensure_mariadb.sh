#!/usr/bin/env bash
# Installs Debian's MariaDB server when it is missing, for the tests that
# check ML Metadata's MySQL backend against a real server. The tests start
# their own mariadbd on a temporary data dir and port (the package's service
# start is refused in containers), so nothing here starts or configures it.
exec "$(dirname "$0")/ensure_debian_package.sh" mariadb-server mariadbd \
  "the ML Metadata MySQL-backend tests"
