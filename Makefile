# spindle: `make demo` and `make test` create .venv when missing, install into it, and run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Steady glibc malloc for the training loop (see DESIGN.md section 5).
export MALLOC_MMAP_THRESHOLD_ := 1073741824
export MALLOC_TRIM_THRESHOLD_ := 4294967296
# OpenMP threads must sleep, not spin, while waiting (10-30x slower training otherwise).
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install postgresql demo test test-all check lint typecheck imports format bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	# torch first and pinned: on these machines 2.13.0 is the local CPU wheel; never pull CUDA.
	$(BIN)/python -m pip install --quiet -c constraints.txt "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# Headless Chromium for the dashboard's browser tests: Debian's package, driven by pip's
# playwright (which downloads no browser of its own). Installed once; sudo only when not root.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

# PostgreSQL for the metadata store's tests on a real server (tests/postgres.py starts a
# throwaway cluster with the package's initdb and pg_ctl on a free loopback port).
postgresql:
	@test -n "$(wildcard /usr/lib/postgresql/*/bin/pg_ctl)" || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }

install: $(STAMP) $(CHROMIUM) postgresql

demo: $(STAMP)
	$(BIN)/spindle demo --days 7 --dir demo-workspace

test: $(STAMP) $(CHROMIUM) postgresql
	$(BIN)/python -m pytest -q -m "not slow" -p no:cacheprovider --durations=25

test-all: $(STAMP) $(CHROMIUM) postgresql
	$(BIN)/python -m pytest -q -m "" -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

check: lint typecheck imports test

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/simulator.py

clean:
	rm -rf $(VENV) demo-workspace .pytest_cache .mypy_cache .ruff_cache
