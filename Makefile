# Skylift: two commands on a fresh clone.
#   make demo   - the nightly pipeline end to end on the embedded default (no servers)
#   make test   - the whole test suite (starts the services the integration tests need)
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m operators.cli demo

test: $(STAMP)
	bash tests/tools/ensure_postgres.sh
	bash tests/tools/ensure_chromium.sh
	$(PY) -m pytest -n 2 --dist loadfile --durations=40 tests

# Every benchmark in turn (not part of `make test`), writing benchmarks/RESULTS.md; BENCH_ARGS=--quick for development.
# The unit tier only: no Spark, no Airflow run, no service (about 30 s).
test-fast: $(STAMP)
	$(PY) -m pytest -q tests/unit

bench: $(STAMP)
	$(PY) -m benchmarks.run_all $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf .demo test-artifacts
