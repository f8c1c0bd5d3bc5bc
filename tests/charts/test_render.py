"""The chart renders, lints strictly, and every object is valid for Kubernetes 1.31.

Core kinds are validated against the Kubernetes OpenAPI schemas in strict mode
(unknown fields are errors); the CRD kinds (KEDA, Prometheus Operator), which
have no schema there, get explicit structural checks here and are validated
against their real CRDs in test_crd_schemas.py.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from functions.routes.orders import WAIT_MAX_SECONDS
from tests.charts.chart import (
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    VALUE_SETS,
    Obj,
    Rendered,
    lint,
    load_values,
    pod_metadata,
    pod_spec,
    render,
    render_set,
)

CRD_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("http.keda.sh/v1alpha1", "HTTPScaledObject"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
RECOMMENDED_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
}
SETS = list(VALUE_SETS)


@pytest.mark.parametrize("name", SETS)
def test_lint_strict_has_no_warnings(name: str) -> None:
    report = lint(load_values(VALUE_SETS[name]))
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert not report["errors"] and not problems, report


@cache
def _schema_errors(obj_json: str) -> str | None:
    # Most objects are identical across value sets and a validation costs ~50 ms: once each.
    try:
        kubernetes_validate.validate(json.loads(obj_json), KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return str(err.message)
    return None


@pytest.mark.parametrize("name", SETS)
def test_core_objects_are_valid_kubernetes(name: str) -> None:
    errors = []
    for obj in render_set(name).objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        error = _schema_errors(json.dumps(obj, sort_keys=True))
        if error:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {error}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("name", SETS)
def test_only_known_kinds_and_unique_names(name: str) -> None:
    seen = set()
    for obj in render_set(name).objects:
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in seen, f"{key} rendered twice"
        seen.add(key)
        if "." in obj["apiVersion"].split("/")[0] and not obj["apiVersion"].startswith(
            ("apps/", "batch/", "policy/", "autoscaling/", "networking.k8s.io/")
        ):
            assert (obj["apiVersion"], obj["kind"]) in CRD_KINDS, key


@pytest.mark.parametrize("name", SETS)
def test_every_object_has_the_recommended_labels(name: str) -> None:
    for obj in render_set(name).objects:
        labels = obj["metadata"].get("labels", {})
        assert set(labels) >= RECOMMENDED_LABELS, (obj["kind"], obj["metadata"]["name"])
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert obj["metadata"]["namespace"] == "orderflow"


# --- CRDs: the fields their controllers need -------------------------------------


def _deployments(rendered: Rendered) -> set[str]:
    return {d["metadata"]["name"] for d in rendered.kinds("Deployment")}


def _check_scaled_object(obj: Obj, rendered: Rendered) -> None:
    spec = obj["spec"]
    assert spec["scaleTargetRef"]["name"] in _deployments(rendered)
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert isinstance(spec["pollingInterval"], int) and isinstance(spec["cooldownPeriod"], int)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "temporal"
    meta = trigger["metadata"]
    # KEDA reads trigger metadata as strings only.
    assert all(isinstance(v, str) for v in meta.values()), meta
    assert {"endpoint", "namespace", "taskQueue", "targetQueueSize"} <= set(meta)
    host, _, port = meta["endpoint"].rpartition(":")
    assert host and port.isdigit()
    assert int(meta["targetQueueSize"]) >= 1
    # A step handed to server-side retries in an outage is an activity task: a scaler
    # that counts only workflow tasks leaves a worker at zero asleep while it waits.
    assert set(meta["queueTypes"].split(",")) == {"workflow", "activity"}, meta["queueTypes"]
    if "authenticationRef" in trigger:
        rendered.get("TriggerAuthentication", trigger["authenticationRef"]["name"])
    # KEDA owns the HPA of a ScaledObject's target: a second one would fight it.
    target = spec["scaleTargetRef"]["name"]
    assert not [
        h for h in rendered.kinds("HorizontalPodAutoscaler") if h["metadata"]["name"] == target
    ]


def _check_http_scaled_object(obj: Obj, rendered: Rendered) -> None:
    spec = obj["spec"]
    ref = spec["scaleTargetRef"]
    assert ref["name"] in _deployments(rendered) and ref.get("kind") == "Deployment"
    # The interceptor forwards to this Service and port: they exist and reach the pods.
    service = rendered.get("Service", ref["service"])
    assert ref["port"] in {p["port"] for p in service["spec"]["ports"]}
    assert service["spec"]["selector"].items() <= (
        pod_metadata(rendered.get("Deployment", ref["name"]))["labels"].items()
    )
    assert 0 <= spec["replicas"]["min"] <= spec["replicas"]["max"]
    assert isinstance(spec["scaledownPeriod"], int) and spec["hosts"]
    # The add-on's ScaledObject owns the HPA: a second one would fight it.
    assert not [
        h
        for h in rendered.kinds("HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == ref["name"]
    ]


def _check_trigger_auth(obj: Obj, _rendered: Rendered) -> None:
    (ref,) = obj["spec"]["secretTargetRef"]
    assert ref["parameter"] == "apiKey" and ref["name"] and ref["key"]


def _selects_a_component(selector: dict[str, Any], rendered: Rendered) -> Obj:
    labels = selector["matchLabels"]
    assert labels["app.kubernetes.io/instance"] == RELEASE
    matches = [
        w
        for w in rendered.workloads()
        if labels.items() <= pod_metadata(w)["labels"].items() and w["kind"] != "Job"
    ]
    assert len(matches) == 1, labels
    return matches[0]


def _check_service_monitor(obj: Obj, rendered: Rendered) -> None:
    selector = obj["spec"]["selector"]["matchLabels"]
    services = [
        s for s in rendered.kinds("Service") if selector.items() <= s["metadata"]["labels"].items()
    ]
    assert services, f"ServiceMonitor {obj['metadata']['name']} selects no Service"
    for endpoint in obj["spec"]["endpoints"]:
        assert endpoint["path"].startswith("/")
        assert any(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in services)


def _check_pod_monitor(obj: Obj, rendered: Rendered) -> None:
    workload = _selects_a_component(obj["spec"]["selector"], rendered)
    names = {p["name"] for c in pod_spec(workload)["containers"] for p in c.get("ports", [])}
    for endpoint in obj["spec"]["podMetricsEndpoints"]:
        assert endpoint["port"] in names and endpoint["path"].startswith("/")


def _check_prometheus_rule(obj: Obj, _rendered: Rendered) -> None:
    groups = obj["spec"]["groups"]
    assert groups
    for group in groups:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip()


CRD_CHECKS = {
    "ScaledObject": _check_scaled_object,
    "TriggerAuthentication": _check_trigger_auth,
    "HTTPScaledObject": _check_http_scaled_object,
    "ServiceMonitor": _check_service_monitor,
    "PodMonitor": _check_pod_monitor,
    "PrometheusRule": _check_prometheus_rule,
}


@pytest.mark.parametrize("name", SETS)
def test_custom_resources_are_well_formed(name: str) -> None:
    rendered = render_set(name)
    for obj in rendered.objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
            CRD_CHECKS[obj["kind"]](obj, rendered)


def test_every_crd_kind_is_rendered_by_some_ci_values() -> None:
    rendered = {(o["apiVersion"], o["kind"]) for n in SETS for o in render_set(n).objects}
    assert rendered >= CRD_KINDS


# --- values: the schema is strict, the guards hold -------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"functions": {"replicaz": 3}}, "replicaz"),
        ({"temporal": {"mode": "cloud"}}, "mode"),
        ({"config": {"extraEnv": {"lower_case": "x"}}}, "lower_case"),
        ({"orderWorker": {"terminationGracePeriodSeconds": 10}}, "terminationGracePeriodSeconds"),
        ({"temporal": {"mode": "external"}}, "temporal.external.address"),
        ({"postgres": {"mode": "external"}}, "postgres.external"),
        ({"functions": {"scaleToZero": {"mode": "knative"}}}, "mode"),
        (
            {"functions": {"scaleToZero": {"kedaHttp": {"timeouts": {"conditionWait": 60}}}}},
            "conditionWait",
        ),
        (
            {
                "functions": {
                    "scaleToZero": {
                        "mode": "keda-http",
                        "kedaHttp": {"minReplicas": 3, "maxReplicas": 2},
                    }
                }
            },
            "minReplicas must not exceed maxReplicas",
        ),
    ],
)
def test_bad_values_are_rejected(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)


def test_hooks_order_migrations_around_the_database() -> None:
    builtin = render_set("default").get("Job", f"{RELEASE}-migrations")
    external = render_set("external-url")
    job = external.get("Job", f"{RELEASE}-migrations")
    # The built-in database is part of the release, so it cannot be migrated before install.
    assert builtin["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    # ... and then the Secret the Job reads must exist before it: a hook with a lower weight.
    secret = external.get("Secret", f"{RELEASE}-database")
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    # A pre-install hook cannot use anything the release itself creates.
    spec = pod_spec(job)
    assert "serviceAccountName" not in spec
    assert not any("envFrom" in c for c in spec["containers"])


def test_notes_tell_how_to_reach_everything() -> None:
    kind = render_set("kind").notes
    assert "http://localhost:8080" in kind and "http://localhost:18233" in kind
    assert "http://localhost:3000" in kind and "helm test orderflow" in kind
    default = render_set("default").notes
    assert "port-forward svc/orderflow-functions 8000:8000" in default


# --- scale to zero ------------------------------------------------------------------

FUNCTIONS = f"{RELEASE}-functions"
PROXY = f"{FUNCTIONS}-proxy"


def test_functions_scale_to_zero_is_off_by_default() -> None:
    for name in ("default", "kind"):
        rendered = render_set(name)
        assert not rendered.kinds("HTTPScaledObject")
        assert rendered.get("HorizontalPodAutoscaler", FUNCTIONS)
        assert PROXY not in {s["metadata"]["name"] for s in rendered.kinds("Service")}
        assert rendered.get("PodDisruptionBudget", FUNCTIONS)["spec"] == {
            "minAvailable": 1,
            "selector": rendered.get("PodDisruptionBudget", FUNCTIONS)["spec"]["selector"],
        }


def test_functions_keda_http_scales_the_api_from_zero_through_the_interceptor() -> None:
    rendered = render_set("scale-to-zero")
    kh = rendered.values["functions"]["scaleToZero"]["kedaHttp"]
    # No HPA for the API and no replica count on its Deployment: the add-on owns both.
    assert FUNCTIONS not in {
        h["metadata"]["name"] for h in rendered.kinds("HorizontalPodAutoscaler")
    }
    assert "replicas" not in rendered.get("Deployment", FUNCTIONS)["spec"]
    (httpso,) = rendered.kinds("HTTPScaledObject")
    spec = httpso["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FUNCTIONS,
        "service": FUNCTIONS,
        "port": rendered.values["functions"]["service"]["port"],
    }
    assert spec["replicas"] == {"min": 0, "max": kh["maxReplicas"]}
    assert spec["scaledownPeriod"] == 300
    assert spec["scalingMetric"] == {"concurrency": {"targetValue": kh["targetConcurrency"]}}
    # Long enough to wake the API, and for the longest status?wait long poll to answer.
    assert spec["timeouts"] == {"conditionWait": "60s", "responseHeader": "30s"}
    assert int(spec["timeouts"]["responseHeader"].removesuffix("s")) > WAIT_MAX_SECONDS
    # The interceptor's proxy Service in KEDA's namespace, under a name of this release.
    proxy = rendered.get("Service", PROXY)["spec"]
    keda_ns = rendered.values["keda"]["namespace"]
    assert proxy["type"] == "ExternalName" and "selector" not in proxy
    assert (
        proxy["externalName"] == f"keda-add-ons-http-interceptor-proxy.{keda_ns}.svc.cluster.local"
    )
    assert [p["port"] for p in proxy["ports"]] == [kh["interceptor"]["port"]]
    # The Ingress sends its host to the interceptor, and the interceptor routes that host.
    ingress = rendered.get("Ingress", FUNCTIONS)
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": PROXY, "port": {"number": 8080}}
    assert rule["host"] in spec["hosts"]
    # In-cluster clients use the proxy name; the interceptor routes each form of it.
    assert {PROXY, f"{PROXY}.{NAMESPACE}", f"{PROXY}.{NAMESPACE}.svc.cluster.local"} <= set(
        spec["hosts"]
    )
    smoke = pod_spec(rendered.get("Pod", f"{RELEASE}-smoke"))["containers"][0]
    env = {e["name"]: e.get("value") for e in smoke["env"]}
    assert env["API_BASE_URL"] == f"http://{PROXY}:8080"
    assert f"http://{PROXY}:8080" in rendered.notes
    # A PDB that lets the lone pod of a scaled-down API be drained.
    pdb = rendered.get("PodDisruptionBudget", FUNCTIONS)["spec"]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb


def test_functions_keda_http_without_ingress_routes_extra_hosts() -> None:
    rendered = render(
        {
            "functions": {
                "scaleToZero": {"mode": "keda-http", "kedaHttp": {"hosts": ["api.example.org"]}}
            }
        }
    )
    assert not rendered.kinds("Ingress")
    (httpso,) = rendered.kinds("HTTPScaledObject")
    assert httpso["spec"]["hosts"][0] == PROXY and httpso["spec"]["hosts"][-1] == "api.example.org"
    assert "orderflow.local" not in httpso["spec"]["hosts"]  # the Ingress host, Ingress off


@pytest.mark.parametrize("worker", ["order-worker", "shipping-worker"])
def test_workers_scale_to_zero_with_keda(worker: str) -> None:
    rendered = render_set("scale-to-zero")
    name = f"{RELEASE}-{worker}"
    scaled = rendered.get("ScaledObject", name)["spec"]
    assert scaled["minReplicaCount"] == 0
    (trigger,) = scaled["triggers"]
    # Woken by the first task waiting in its queue, workflow or activity.
    assert trigger["metadata"]["activationTargetQueueSize"] == "0"
    assert "replicas" not in rendered.get("Deployment", name)["spec"]
    assert name not in {h["metadata"]["name"] for h in rendered.kinds("HorizontalPodAutoscaler")}
    # A PDB never stops a scale-down (that is no eviction), but minAvailable would make
    # the one pod of a worker that is awake undrainable; maxUnavailable does not.
    pdb = rendered.get("PodDisruptionBudget", name)["spec"]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
