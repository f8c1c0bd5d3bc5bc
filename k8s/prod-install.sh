#!/usr/bin/env bash
# The production-style install (docs/kubernetes.md, "Production install"), in order:
# kube-prometheus-stack, the CloudNativePG operator, the PostgreSQL Cluster for Temporal,
# the official Temporal chart, KEDA, the OpenTelemetry Collector (OTEL=1), then Orderflow
# against that Temporal, and its smoke test. Every chart version is pinned below.
#
#   make prod-install                 run it (needs kubectl and helm, a cluster, the image)
#   make prod-install DRY_RUN=1       print the commands, run nothing
#   make prod-install OTEL=1          with the collector; the processes send traces to it
#   ORDERFLOW_VALUES=my-values.yaml   your values instead of k8s/prod-values.yaml
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned chart versions: k8s/versions.env, the one place (a value already in the
# environment wins). The Temporal and collector charts' values.yaml, and the
# CloudNativePG 1.30.0 CRDs, are kept in tests/charts/upstream/ and checked against.
while IFS='=' read -r key value; do
  case "$key" in '' | '#'*) continue ;; esac
  if [ -z "${!key:-}" ]; then
    printf -v "$key" '%s' "$value"
  fi
done <k8s/versions.env

NAMESPACE=${NAMESPACE:-orderflow}
RELEASE=${RELEASE:-orderflow}
# Production values: no kind settings, FLAKY off (k8s/prod-values.yaml).
ORDERFLOW_VALUES=${ORDERFLOW_VALUES:-k8s/prod-values.yaml}
OTEL=${OTEL:-0}
DRY_RUN=${DRY_RUN:-0}

# The built-in PostgreSQL's password: a Secret the chart reads and never makes (GitOps-safe,
# docs/kubernetes.md#gitops-the-database-password), <fullname>-postgres-password.
case "$RELEASE" in
  *orderflow*) DB_SECRET=${DB_SECRET:-$RELEASE-postgres-password} ;;
  *) DB_SECRET=${DB_SECRET:-$RELEASE-orderflow-postgres-password} ;;
esac
# The payload encryption keys, the same way: <fullname>-payload-keys, made once, never
# overwritten (a new key would strand every history written under the old one).
KEYS_SECRET=${DB_SECRET%-postgres-password}-payload-keys

total=$((OTEL == 1 ? 9 : 8))
n=0
step() {
  n=$((n + 1))
  echo "==> [$n/$total] $*"
}
# Each command is printed before it runs ("+ ..."); with DRY_RUN=1 only printed.
run() {
  echo "+ $*"
  if [ "$DRY_RUN" != 1 ]; then
    "$@"
  fi
}

# Creates the Secret NAME in NAMESPACE with a random password (or, given "keys", a first
# AES-256 payload key), unless it exists: never overwritten (PostgreSQL keeps the password
# it was initialised with; histories need the key they were written under). Never printed.
create_secret_once() {
  if kubectl -n "$1" get secret "$2" >/dev/null 2>&1; then
    echo "    Secret $2 exists: kept"
    return
  fi
  kubectl create namespace "$1" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  if [ "${3:-password}" = keys ]; then
    kubectl -n "$1" create secret generic "$2" --from-literal=keys="k$(date +%Y%m%d):$(
      python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())')"
  else
    kubectl -n "$1" create secret generic "$2" \
      --from-literal=password="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
  fi
}

[ "$DRY_RUN" = 1 ] && echo "==> dry run: printing the commands only"

step "chart repositories"
run helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
run helm repo add cnpg https://cloudnative-pg.github.io/charts --force-update
run helm repo add temporal https://go.temporal.io/helm-charts --force-update
run helm repo add kedacore https://kedacore.github.io/charts --force-update
if [ "$OTEL" = 1 ]; then
  run helm repo add open-telemetry https://open-telemetry.github.io/opentelemetry-helm-charts --force-update
fi

step "kube-prometheus-stack $KPS_CHART_VERSION (first: the ServiceMonitor CRD the Temporal values use)"
run helm upgrade --install monitoring prometheus-community/kube-prometheus-stack \
  --version "$KPS_CHART_VERSION" -n monitoring --create-namespace \
  -f k8s/kube-prometheus-stack-values.yaml --wait --timeout 10m

step "CloudNativePG operator (chart $CNPG_CHART_VERSION)"
run helm upgrade --install cnpg cnpg/cloudnative-pg --version "$CNPG_CHART_VERSION" \
  -n cnpg-system --create-namespace --wait --timeout 5m

step "PostgreSQL for Temporal: Cluster temporal-postgres, databases temporal and temporal_visibility"
run kubectl apply -f k8s/temporal-postgres-cluster.yaml
run kubectl -n temporal wait --for=condition=Ready cluster/temporal-postgres --timeout=15m
run kubectl -n temporal wait --for=jsonpath='{.status.applied}'=true \
  database/temporal-postgres-visibility --timeout=5m

step "Temporal (chart $TEMPORAL_CHART_VERSION): schema job, frontend/history/matching x3, namespace default"
run helm upgrade --install temporal temporal/temporal --version "$TEMPORAL_CHART_VERSION" \
  -n temporal -f k8s/temporal-values.yaml --wait --timeout 15m

step "KEDA $KEDA_CHART_VERSION"
run helm upgrade --install keda kedacore/keda --version "$KEDA_CHART_VERSION" \
  -n keda --create-namespace --wait --timeout 5m

otel_set=()
if [ "$OTEL" = 1 ]; then
  step "OpenTelemetry Collector (chart $OTEL_COLLECTOR_CHART_VERSION)"
  run helm upgrade --install otel-collector open-telemetry/opentelemetry-collector \
    --version "$OTEL_COLLECTOR_CHART_VERSION" -n monitoring --create-namespace \
    -f k8s/otel-collector-values.yaml --wait --timeout 5m
  otel_set=(--set otel.collector.enabled=true)
fi

step "Orderflow against that Temporal, KEDA scaling, ServiceMonitors and alert rules"
run create_secret_once "$NAMESPACE" "$DB_SECRET"
run create_secret_once "$NAMESPACE" "$KEYS_SECRET" keys
run helm upgrade --install "$RELEASE" charts/orderflow -n "$NAMESPACE" --create-namespace \
  -f "$ORDERFLOW_VALUES" -f k8s/orderflow-external-temporal-values.yaml -f k8s/keda-values.yaml \
  --set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true \
  ${otel_set[@]+"${otel_set[@]}"} --wait --timeout 10m

step "smoke test: one order through the API to COMPLETED"
run helm test "$RELEASE" -n "$NAMESPACE" --logs

echo "==> done"
