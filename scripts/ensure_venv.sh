#!/usr/bin/env bash
# Creates .venv with Python 3.10 and installs exactly requirements.lock, then
# the project itself. Re-runs the install only when the lock or setup.py is
# newer than the last successful install.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=.venv
STAMP="$VENV/.installed"

if [ ! -x "$VENV/bin/python" ]; then
  PY="$(scripts/find_python310.sh)"
  echo "creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi

if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then
  echo "error: $VENV is not Python 3.10 ($("$VENV/bin/python" --version)); remove it and re-run." >&2
  exit 1
fi

if [ -f "$STAMP" ] && [ "$STAMP" -nt requirements.lock ] && [ "$STAMP" -nt setup.py ]; then
  exit 0
fi

echo "installing requirements.lock into $VENV"
# uv installs the lock's wheels in parallel: 19 s here against pip's 100 s
# for the same 290 packages (29 s with an empty cache), and the first thing
# `make test` does on a fresh clone is this install. pip stays for the
# editable install of the project and for `pip check`.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pip==24.3.1" "uv==0.13.9"
# --no-deps: the lock is the complete, already-resolved set, so it is
# installed as is instead of re-resolving the TFX graph (which backtracks for
# minutes). --compile-bytecode (below): as pip does, so that no test pays for
# compiling TensorFlow's modules on first import.
UV=("$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --no-deps)
# Test-only tools that the product's processes would import just by finding
# them go into their own folder, off sys.path (tests add it): with
# kubernetes-validate in site-packages, `kubernetes.dynamic` imports it, and
# jsonschema's format grammars with it, in every process that imports TFX
# (1.5 s of each 8.3 s start measured here; the Dockerfile leaves it out of the image).
OFF_PATH="$VENV/test-tools"
OFF_PATH_PACKAGES='^kubernetes-validate=='
grep -v -E "$OFF_PATH_PACKAGES" requirements.lock > "$VENV/requirements-on-path.txt"
"${UV[@]}" --compile-bytecode -r "$VENV/requirements-on-path.txt"
if "$VENV/bin/python" -m pip show --quiet kubernetes-validate >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip uninstall --quiet --yes kubernetes-validate  # a venv from before
fi
rm -rf "$OFF_PATH"
grep -E "$OFF_PATH_PACKAGES" requirements.lock > "$VENV/requirements-off-path.txt"
"${UV[@]}" --target "$OFF_PATH" -r "$VENV/requirements-off-path.txt"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
"$VENV/bin/python" -m pip check
touch "$STAMP"
