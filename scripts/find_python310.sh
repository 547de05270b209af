#!/usr/bin/env bash
# Prints the path of a working Python 3.10 interpreter: python3.10 on PATH,
# else pyenv's; otherwise explains what to install and exits 1. Each candidate
# is executed, because a pyenv shim exists on PATH even when 3.10 is not the
# selected version and then fails when run.
set -euo pipefail
works() { "$1" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; }

if command -v python3.10 >/dev/null 2>&1 && works "$(command -v python3.10)"; then
  command -v python3.10
  exit 0
fi
if command -v pyenv >/dev/null 2>&1; then
  root="$(pyenv root)"
else
  root="${PYENV_ROOT:-$HOME/.pyenv}"
fi
for candidate in "$root"/versions/3.10*/bin/python3.10; do
  if [ -x "$candidate" ] && works "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done
echo "error: no working Python 3.10 found on PATH or under $root/versions. TFX 1.16, the" \
     "newest TFX that installs on glibc 2.36, needs it: install it with 'pyenv install 3.10'" \
     "or your distribution's python3.10 package, then re-run." >&2
exit 1
