# One command runs the pipeline, one runs the tests; both create .venv from
# requirements.lock first when it is missing or stale.
PY := .venv/bin/python
# Keras 2 for TFX's Keras paths; set here too so subprocesses inherit it.
export TF_USE_LEGACY_KERAS := 1
ARGS ?=

# `make test` also installs MariaDB (Debian's package) when missing: the ML
# Metadata MySQL-backend tests start a real server.
.PHONY: venv run test test-fast lint bench bench-example-gen bench-statistics-gen bench-evaluator bench-trainer bench-cli bench-serving lock clean

venv:
	@scripts/ensure_venv.sh

run: venv
	$(PY) -m pipeline run $(ARGS)

test: venv
	@scripts/ensure_mariadb.sh
	@scripts/ensure_chromium.sh
	@scripts/ensure_nginx.sh
	@scripts/ensure_prometheus.sh
	$(PY) -m pytest $(ARGS)

# Unit tests only: skips the end-to-end pipeline runs.
test-fast: venv
	$(PY) -m pytest -m "not e2e" $(ARGS)

lint: venv
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy

bench: venv
	$(PY) bench/bench_local_run.py $(ARGS)

bench-example-gen: venv
	$(PY) bench/bench_example_gen.py $(ARGS)

bench-statistics-gen: venv
	$(PY) bench/bench_statistics_gen.py $(ARGS)

bench-evaluator: venv
	$(PY) bench/bench_evaluator.py $(ARGS)

bench-trainer: venv
	$(PY) bench/bench_trainer.py $(ARGS)

bench-cli: venv
	$(PY) bench/bench_cli.py $(ARGS)

bench-serving: venv
	$(PY) bench/bench_serving.py $(ARGS)

lock:
	scripts/lock.sh

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
