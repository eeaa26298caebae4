# Fast Render: `make demo` and `make test` do all the set-up on a fresh machine.
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: setup demo test test-fast lint up down bench clean

setup:  ## install system packages (once), create .venv (requirements-test.txt) and .venv-checks (checkov)
	bash infra/local/setup.sh

demo: setup  ## start the local cloud and render the sample story while the primary fails
	$(PY) -m infra.local.demo

test: setup  ## every test, against the local cloud (started and stopped by the tests)
	$(PY) -m pytest -q -p no:cacheprovider tests

lint: setup  ## Python syntax errors and undefined names (ruff), shellcheck on every shell script (scripts/lint.sh)
	PYTHON=$(PY) bash scripts/lint.sh

up: setup  ## start the local cloud and leave it running
	$(PY) -m infra.local up

down:  ## stop everything the local cloud started
	$(PY) -m infra.local down

bench: setup  ## benchmarks: they print figures
	$(PY) -m pip install -q --no-deps -r bench/requirements.txt
	$(PY) bench/render.py
	$(PY) bench/selector.py
	$(PY) bench/memory.py
	$(PY) bench/failover.py
	$(PY) bench/store.py

.PHONY: chaos
chaos: setup  ## the fault campaign on the local cloud: prints figures, fails if a promised zero is not zero
	$(PY) -m bench.chaos

clean: down
	rm -rf .local-cloud out
