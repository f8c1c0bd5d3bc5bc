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

.PHONY: help setup run test test-faults test-containers lint format histories migrate clean load bench cold-start observe dashboards \
        kind-up images deploy monitoring keda scale-to-zero k8s-load k8s-smoke kind-down prod-install

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing orderflow with its local services (about a minute the first time)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[local,dev,load]'
	@touch $@
	@echo "==> installed"

# checkov (the chart's security scan in `make test`) pins its own dependencies: own venv.
CHECKOV_STAMP := $(VENV)/tools/checkov/.installed-stamp
$(CHECKOV_STAMP):
	@echo "==> installing checkov into $(VENV)/tools/checkov (a minute the first time)"
	@test -x $(VENV)/tools/checkov/bin/python || $(PYTHON) -m venv $(VENV)/tools/checkov
	@$(VENV)/tools/checkov/bin/pip install --quiet --disable-pip-version-check 'checkov>=3.2,<4'
	@touch $@

setup: $(STAMP) $(CHECKOV_STAMP) ## create the virtualenv and install (done automatically by the others)

run: $(STAMP) ## run PostgreSQL, Temporal, both workers and the API; Ctrl-C stops all
	@$(BIN)/python -m orderflow.devstack

test: lint $(CHECKOV_STAMP) ## lint, type-check and run the whole test suite against real services
	@$(BIN)/pytest

test-faults: $(STAMP) ## kill/restart workers, PostgreSQL, Temporal under load (~3 min)
	@$(BIN)/pytest -m faults tests/faults

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

bench: $(STAMP) ## the benchmark points on fresh local stacks (~35 min); writes docs/benchmarks.md
	@$(BIN)/python -m loadtest.bench

cold-start: $(STAMP) ## API and workers waking from zero, real processes: RUNS=5 IDLE=10 FLAKY=off; writes docs/benchmarks.md's section
	@RUNS=$(or $(RUNS),5) IDLE=$(or $(IDLE),10) FLAKY=$(or $(FLAKY),off) $(BIN)/python -m loadtest.cold_start

migrate: $(STAMP) ## apply database migrations to DATABASE_URL
	@$(BIN)/python -m orderflow.migrate

observe: $(STAMP) ## run Prometheus on 127.0.0.1:9090 scraping `make run`'s stack, with the alert rules
	@$(BIN)/python -m observability.prometheus

dashboards: $(STAMP) ## regenerate the Grafana dashboards in charts/orderflow/dashboards
	@$(BIN)/python -m observability.dashboards

clean: ## remove the virtualenv and local data (orders, Temporal history)
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache

# --- Kubernetes on kind (docs/kubernetes.md). These need docker, kind, kubectl and
# helm on your machine; `make test` checks the chart offline without them.
CLUSTER    ?= orderflow
NAMESPACE  ?= orderflow
RELEASE    ?= orderflow
IMAGE      ?= orderflow:dev

kind-up: ## kind cluster from kind-config.yaml (3 nodes) plus metrics-server for the HPAs
	kind create cluster --name $(CLUSTER) --config kind-config.yaml
	helm repo add metrics-server https://kubernetes-sigs.github.io/metrics-server/ --force-update
	helm upgrade --install metrics-server metrics-server/metrics-server -n kube-system \
		--set 'args={--kubelet-insecure-tls}' --wait

images: ## build the image and load it into the kind nodes
	docker build -t $(IMAGE) .
	kind load docker-image $(IMAGE) --name $(CLUSTER)

deploy: ## helm upgrade --install the chart with k8s/kind-values.yaml and wait until ready
	helm upgrade --install $(RELEASE) charts/orderflow -n $(NAMESPACE) --create-namespace \
		-f k8s/kind-values.yaml --wait --timeout 10m

monitoring: ## kube-prometheus-stack, then the chart's ServiceMonitors and alert rules on
	helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
	helm upgrade --install monitoring prometheus-community/kube-prometheus-stack -n monitoring \
		--create-namespace -f k8s/kube-prometheus-stack-values.yaml --wait --timeout 10m
	helm upgrade $(RELEASE) charts/orderflow -n $(NAMESPACE) --reuse-values \
		--set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true --wait

keda: ## KEDA, then both workers scale on their task-queue backlog (k8s/keda-values.yaml)
	helm repo add kedacore https://kedacore.github.io/charts --force-update
	helm upgrade --install keda kedacore/keda -n keda --create-namespace --wait
	helm upgrade $(RELEASE) charts/orderflow -n $(NAMESPACE) --reuse-values \
		-f k8s/keda-values.yaml --wait

scale-to-zero: ## KEDA + its HTTP add-on, then the API and both workers scale to zero when idle (k8s/scale-to-zero-values.yaml)
	helm repo add kedacore https://kedacore.github.io/charts --force-update
	helm upgrade --install keda kedacore/keda -n keda --create-namespace --wait
	helm upgrade --install http-add-on kedacore/keda-add-ons-http -n keda --version 0.15.0 --wait
	helm upgrade $(RELEASE) charts/orderflow -n $(NAMESPACE) --reuse-values \
		-f k8s/scale-to-zero-values.yaml --wait

k8s-load: ## load-test Job in the cluster: make k8s-load RATE=10 DURATION=120
	docker build --target loadtest -t orderflow-loadtest:dev .
	kind load docker-image orderflow-loadtest:dev --name $(CLUSTER)
	kubectl -n $(NAMESPACE) delete job orderflow-load --ignore-not-found
	kubectl set env --local -f k8s/loadtest-job.yaml RATE=$(RATE) DURATION=$(DURATION) \
		-o yaml | kubectl -n $(NAMESPACE) apply -f -
	kubectl -n $(NAMESPACE) wait --for=condition=complete job/orderflow-load --timeout=30m
	kubectl -n $(NAMESPACE) logs job/orderflow-load

k8s-smoke: ## helm test: one order through the API in the cluster, to COMPLETED
	helm test $(RELEASE) -n $(NAMESPACE) --logs

kind-down: ## delete the kind cluster and everything in it
	kind delete cluster --name $(CLUSTER)

# --- The production-style install (docs/kubernetes.md, "Production install"): pinned
# charts for kube-prometheus-stack, CloudNativePG, Temporal, KEDA and (OTEL=1) the
# OpenTelemetry Collector, then Orderflow against that Temporal. DRY_RUN=1 prints it.
DRY_RUN          ?= 0
OTEL             ?= 0
ORDERFLOW_VALUES ?= k8s/kind-values.yaml

prod-install: ## the production-style install, step by step; DRY_RUN=1 prints the commands, OTEL=1 adds tracing
	@DRY_RUN=$(DRY_RUN) OTEL=$(OTEL) NAMESPACE=$(NAMESPACE) RELEASE=$(RELEASE) \
		ORDERFLOW_VALUES=$(ORDERFLOW_VALUES) bash k8s/prod-install.sh
