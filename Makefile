# AutomateOS: `make dev` runs the whole stack at http://127.0.0.1:8000; `make test` runs every test.
# Both create the virtualenv and install on first use (a fresh machine needs Python 3.10+ and make).

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PACKAGES := -e "libs/common[aws]" -e services/auth -e services/workflows -e services/ingress -e services/engine \
            -e "tools/devstack[test]"
SOURCES  := libs/common/src services/auth/src services/workflows/src services/ingress/src \
            services/engine/src tools/devstack/src bench
PYTEST_ARGS ?=

.PHONY: dev test unit integration lint typecheck install clean bench

$(VENV)/.installed: constraints.txt libs/common/pyproject.toml services/*/pyproject.toml tools/devstack/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is needed")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt $(PACKAGES)
	@touch $@

install: $(VENV)/.installed

dev: install
	@$(BIN)/python -m automateos_devstack

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy $(SOURCES)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

integration: install
	$(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy $(SOURCES)

# Throughput, latency and memory on real PostgreSQL and Redis: bench/results/<date>-<sha>.md (bench/NOTES.md).
# BENCH_QUICK=1 for a smoke run; BENCH_WORKERS, BENCH_DURATION_S, BENCH_RUNS ... tune it. wrk is the load
# generator (installed here from Debian when we are root); without it a Python one stands in.
bench: install
	@command -v wrk >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
		{ echo "installing wrk (Debian package) ..."; apt-get install -y -qq wrk >/dev/null 2>&1 || \
		  { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1; } || \
		  echo "could not install wrk: the Python load generator stands in"; }
	$(BIN)/python -m bench $(BENCH_ARGS)

# Rewrite constraints.txt from what is installed now (after changing a dependency).
constraints: install
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^-e ' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
