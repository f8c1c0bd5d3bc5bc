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
READS    ?= 0
POLL     ?= 1
WAIT     ?= 0
REPORT   ?= reports/load-$(shell date +%Y%m%d-%H%M%S)

.PHONY: help setup browser run test test-model test-faults test-containers lint format histories migrate clean load bench bench-admission cold-start observe dashboards chart-docs lock lock-check \
        kind-up images deploy monitoring keda scale-to-zero k8s-load k8s-smoke kind-down prod-install

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Dependencies come from requirements/dev.txt: every package pinned with its hashes,
# exported from uv.lock by `make lock` (pip needs nothing else, so a fresh machine with
# Python 3.11 and pip installs exactly what CI and the image install). The project
# itself goes in editable and without dependencies.
$(STAMP): pyproject.toml requirements/dev.txt
	@echo "==> creating $(VENV) and installing orderflow with its local services (about a minute the first time)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@
	@echo "==> installed"

# --- The lockfile (`make lock`). uv resolves once for every platform and Python the
# project supports (uv.lock); the requirements/*.txt exports are what pip installs.
UV_VERSION := 0.13.10
UV         := $(VENV)/tools/uv/bin/uv
# The dependency sets: make setup and CI (all extras), the image, its loadtest stage.
LOCK_EXPORTS := requirements/dev.txt:--all-extras requirements/image.txt: requirements/loadtest.txt:--extra=load

$(UV):
	@test -x $(VENV)/tools/uv/bin/python || $(PYTHON) -m venv $(VENV)/tools/uv
	@$(VENV)/tools/uv/bin/pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'

CHECKOV_COMPILE = $(UV) pip compile --universal --generate-hashes --python-version 3.11 --quiet \
	requirements/checkov.in -o requirements/checkov.txt

lock: $(UV) ## re-resolve every dependency to the newest allowed: uv.lock and requirements/*.txt (LOCK_ARGS=--upgrade-package=NAME for one)
	$(UV) lock $(or $(LOCK_ARGS),--upgrade)
	@$(foreach e,$(LOCK_EXPORTS),$(UV) export --frozen --quiet --no-emit-project $(word 2,$(subst :, ,$(e))) -o $(word 1,$(subst :, ,$(e))) &&) true
	$(CHECKOV_COMPILE) $(or $(LOCK_ARGS),--upgrade)
	@echo "==> uv.lock and requirements/*.txt updated; commit them"

lock-check: $(UV) ## fail if uv.lock or requirements/*.txt do not match pyproject.toml (CI runs it)
	$(UV) lock --check
	@$(foreach e,$(LOCK_EXPORTS),$(UV) export --frozen --quiet --no-emit-project $(word 2,$(subst :, ,$(e))) -o $(word 1,$(subst :, ,$(e))) &&) true
	@$(CHECKOV_COMPILE)
	@git diff --quiet -- requirements/ || { git diff --stat -- requirements/; echo "requirements/*.txt are stale: run make lock and commit"; exit 1; }

# checkov (the chart's security scan in `make test`) pins its own dependencies: own venv.
CHECKOV_STAMP := $(VENV)/tools/checkov/.installed-stamp
$(CHECKOV_STAMP): requirements/checkov.txt
	@echo "==> installing checkov into $(VENV)/tools/checkov (a minute the first time)"
	@test -x $(VENV)/tools/checkov/bin/python || $(PYTHON) -m venv $(VENV)/tools/checkov
	@$(VENV)/tools/checkov/bin/pip install --quiet --disable-pip-version-check --require-hashes \
		-r requirements/checkov.txt
	@touch $@

# The load report's page is checked in a real browser (tests/loadtest/test_report_page.py):
# Debian's chromium, installed only when missing, with apt-get as root or through sudo
# when it asks no password. Otherwise one line says how to install it, and the test is
# skipped (on CI, CI=true, it fails instead).
browser: ## install Debian's chromium for the report-page test, if it is missing (root or sudo)
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; \
	elif [ "$$(id -u)" = 0 ]; then sudo=; \
	elif sudo -n true >/dev/null 2>&1; then sudo=sudo; \
	else echo "==> chromium is missing and installing it needs root: run 'sudo apt-get install chromium' (or apt-get as root); until then the load report's browser test, tests/loadtest/test_report_page.py, is skipped (on CI it fails)"; exit 0; fi; \
	echo "==> installing chromium ($${sudo:+sudo }apt-get) for the load report's browser test"; \
	$$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium >/dev/null

setup: $(STAMP) $(CHECKOV_STAMP) ## create the virtualenv and install (done automatically by the others)

run: $(STAMP) ## run PostgreSQL, Temporal, both workers and the API; Ctrl-C stops all
	@$(BIN)/python -m orderflow.devstack

test: lint $(CHECKOV_STAMP) browser ## lint, type-check and run the whole test suite against real services
	@$(BIN)/pytest

test-faults: $(STAMP) ## kill/restart workers, PostgreSQL, Temporal under load (a few minutes)
	@$(BIN)/pytest -m faults tests/faults

# Random interleavings, a new seed each run; a failure prints the steps to keep as a
# named test in tests/model/test_regressions.py (docs/protocol.md).
test-model: $(STAMP) ## explore the order protocol's interleavings for ~10 min: EXAMPLES=120
	@MODEL_EXPLORE=1 MODEL_EXAMPLES=$(or $(EXAMPLES),120) $(BIN)/pytest -p no:cacheprovider \
		--timeout=1200 tests/model/test_order_protocol.py

# The first container test also waits for the image build (a minute or more): --timeout 300.
test-containers: $(STAMP) ## build the image with podman, run the chart's containers (docs/containers.md)
	@bash k8s/containers/setup.sh
	@$(BIN)/pytest -m containers --timeout=300 --durations=5 tests/containers

# SET=dev (default) is the current code's set; SET=v0.1.0 records a release's (docs/releasing.md).
histories: $(STAMP) ## record the replay gate's workflow histories from real runs (~30 s): SET=dev
	@$(BIN)/python -m tests.replay.record --set $(or $(SET),dev)

lint: $(STAMP) ## ruff and mypy
	@echo "==> ruff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@echo "==> mypy"
	@$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and safe fixes
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

load: $(STAMP) ## drive the API: RATE=5 DURATION=60 POLL=1 (s) or WAIT=20 (long poll) CANCEL=0 UPDATE=0 READS=0 API=... UI=1
	@$(BIN)/locust -f loadtest/locustfile.py --host $(API) \
		$(if $(UI),--web-port 8089,--headless --only-summary) \
		--orders-per-second $(RATE) --duration $(DURATION) \
		--cancel-share $(CANCEL) --update-share $(UPDATE) --reads-per-second $(READS) \
		--poll-interval $(POLL) --wait-seconds $(WAIT) \
		--stop-timeout 10 --report-dir $(REPORT) --html $(REPORT)/locust.html

bench: $(STAMP) ## the benchmark points on fresh local stacks (~40 min); writes docs/benchmarks.md
	@$(BIN)/python -m loadtest.bench

bench-admission: $(STAMP) ## admission below and past the knee (5-34 orders/s, past the knee twice), make run defaults and a plain dev server (~18 min); reports/ only
	@BENCH_ONLY=admission $(BIN)/python -m loadtest.bench

cold-start: $(STAMP) ## API and workers waking from zero, real processes: RUNS=5 IDLE=10 FLAKY=off; writes docs/benchmarks.md's section
	@RUNS=$(or $(RUNS),5) IDLE=$(or $(IDLE),10) FLAKY=$(or $(FLAKY),off) $(BIN)/python -m loadtest.cold_start

migrate: $(STAMP) ## apply database migrations to DATABASE_URL
	@$(BIN)/python -m orderflow.migrate

observe: $(STAMP) ## run Prometheus on 127.0.0.1:9090 scraping `make run`'s stack, with the alert rules
	@$(BIN)/python -m observability.prometheus

dashboards: $(STAMP) ## regenerate the Grafana dashboards in charts/orderflow/dashboards
	@$(BIN)/python -m observability.dashboards

chart-docs: $(STAMP) ## regenerate charts/orderflow/values.schema.json and README.md from tools/chart_schema.py
	@$(BIN)/python -m tools.chart_docs

clean: ## remove the virtualenv and local data (orders, Temporal history)
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache

# --- Kubernetes on kind (docs/kubernetes.md). These need docker, kind, kubectl and
# helm on your machine; `make test` checks the chart offline without them.
CLUSTER    ?= orderflow
NAMESPACE  ?= orderflow
RELEASE    ?= orderflow
IMAGE      ?= orderflow:dev
# Every chart and the kind node image, pinned in one place (KEY=value, also read by
# k8s/prod-install.sh).
include k8s/versions.env

kind-up: ## kind cluster from kind-config.yaml (3 nodes) plus metrics-server for the HPAs
	kind create cluster --name $(CLUSTER) --config kind-config.yaml --image $(KIND_NODE_IMAGE)
	helm repo add metrics-server https://kubernetes-sigs.github.io/metrics-server/ --force-update
	helm upgrade --install metrics-server metrics-server/metrics-server -n kube-system \
		--version $(METRICS_SERVER_CHART_VERSION) --set 'args={--kubelet-insecure-tls}' --wait

images: ## build the image and load it into the kind nodes
	docker build -t $(IMAGE) .
	kind load docker-image $(IMAGE) --name $(CLUSTER)

# The built-in PostgreSQL's password: a Secret the chart reads but never makes (GitOps-safe,
# docs/kubernetes.md#gitops-the-database-password). Created here once, never overwritten.
DB_SECRET ?= $(if $(findstring orderflow,$(RELEASE)),$(RELEASE),$(RELEASE)-orderflow)-postgres-password
# The keys that encrypt every Temporal payload, the same way: made once with one random
# key, never overwritten (docs/kubernetes.md#payload-encryption-keys).
KEYS_SECRET ?= $(if $(findstring orderflow,$(RELEASE)),$(RELEASE),$(RELEASE)-orderflow)-payload-keys

deploy: ## the database password and payload key Secrets (once), then helm upgrade --install with k8s/kind-values.yaml
	kubectl create namespace $(NAMESPACE) --dry-run=client -o yaml | kubectl apply -f -
	kubectl -n $(NAMESPACE) get secret $(DB_SECRET) >/dev/null 2>&1 || kubectl -n $(NAMESPACE) create secret generic $(DB_SECRET) --from-literal=password="$$($(PYTHON) -c 'import secrets; print(secrets.token_hex(24))')"
	kubectl -n $(NAMESPACE) get secret $(KEYS_SECRET) >/dev/null 2>&1 || kubectl -n $(NAMESPACE) create secret generic $(KEYS_SECRET) --from-literal=keys="k$$(date +%Y%m%d):$$($(PYTHON) -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())')"
	helm upgrade --install $(RELEASE) charts/orderflow -n $(NAMESPACE) --create-namespace \
		-f k8s/kind-values.yaml --wait --timeout 10m

monitoring: ## kube-prometheus-stack, then the chart's ServiceMonitors and alert rules on
	helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
	helm upgrade --install monitoring prometheus-community/kube-prometheus-stack -n monitoring \
		--version $(KPS_CHART_VERSION) --create-namespace \
		-f k8s/kube-prometheus-stack-values.yaml --wait --timeout 10m
	helm upgrade $(RELEASE) charts/orderflow -n $(NAMESPACE) --reuse-values \
		--set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true --wait

keda: ## KEDA, then both workers scale on their task-queue backlog (k8s/keda-values.yaml)
	helm repo add kedacore https://kedacore.github.io/charts --force-update
	helm upgrade --install keda kedacore/keda -n keda --version $(KEDA_CHART_VERSION) \
		--create-namespace --wait
	helm upgrade $(RELEASE) charts/orderflow -n $(NAMESPACE) --reuse-values \
		-f k8s/keda-values.yaml --wait

scale-to-zero: ## KEDA + its HTTP add-on, then the API and both workers scale to zero when idle (k8s/scale-to-zero-values.yaml)
	helm repo add kedacore https://kedacore.github.io/charts --force-update
	helm upgrade --install keda kedacore/keda -n keda --version $(KEDA_CHART_VERSION) \
		--create-namespace --wait
	helm upgrade --install http-add-on kedacore/keda-add-ons-http -n keda \
		--version $(KEDA_HTTP_ADD_ON_CHART_VERSION) --wait
	helm upgrade $(RELEASE) charts/orderflow -n $(NAMESPACE) --reuse-values \
		-f k8s/scale-to-zero-values.yaml --wait

# Through the KEDA HTTP interceptor when the release scales the API to zero; waits for
# locust to end or the Job to fail, prints the summary, copies the report to $(REPORT).
k8s-load: $(STAMP) ## load-test Job in the cluster, report to reports/: make k8s-load RATE=10 DURATION=120
	docker build --target loadtest -t orderflow-loadtest:dev .
	kind load docker-image orderflow-loadtest:dev --name $(CLUSTER)
	$(BIN)/python -m loadtest.k8s_load --namespace $(NAMESPACE) --release $(RELEASE) \
		--rate $(RATE) --duration $(DURATION) --report-dir $(REPORT)

k8s-smoke: ## helm test: one order through the API in the cluster, to COMPLETED
	helm test $(RELEASE) -n $(NAMESPACE) --logs

kind-down: ## delete the kind cluster and everything in it
	kind delete cluster --name $(CLUSTER)

# --- The production-style install (docs/kubernetes.md, "Production install"): pinned
# charts for kube-prometheus-stack, CloudNativePG, Temporal, KEDA and (OTEL=1) the
# OpenTelemetry Collector, then Orderflow against that Temporal. DRY_RUN=1 prints it.
DRY_RUN          ?= 0
OTEL             ?= 0
ORDERFLOW_VALUES ?= k8s/prod-values.yaml

prod-install: ## the production-style install, step by step; DRY_RUN=1 prints the commands, OTEL=1 adds tracing
	@DRY_RUN=$(DRY_RUN) OTEL=$(OTEL) NAMESPACE=$(NAMESPACE) RELEASE=$(RELEASE) \
		ORDERFLOW_VALUES=$(ORDERFLOW_VALUES) DB_SECRET=$(DB_SECRET) \
		KPS_CHART_VERSION=$(KPS_CHART_VERSION) CNPG_CHART_VERSION=$(CNPG_CHART_VERSION) \
		TEMPORAL_CHART_VERSION=$(TEMPORAL_CHART_VERSION) KEDA_CHART_VERSION=$(KEDA_CHART_VERSION) \
		OTEL_COLLECTOR_CHART_VERSION=$(OTEL_COLLECTOR_CHART_VERSION) bash k8s/prod-install.sh
