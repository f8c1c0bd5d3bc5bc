"""The chart's KEDA, KEDA HTTP add-on, Prometheus Operator and Temporal worker
controller objects are valid for the real CRDs.

tests/charts/crds/ holds the CustomResourceDefinitions of the releases the chart
supports, copied from the projects' repositories (README.md there). Every custom
resource the chart renders, with every toggle that emits one, is validated against
the `openAPIV3Schema` of the CRD version its apiVersion names, the way the API
server and `kubectl --validate=strict` would:

- unknown fields are errors (the API server would silently prune them) unless the
  schema says `x-kubernetes-preserve-unknown-fields`;
- `x-kubernetes-int-or-string` accepts an integer or a string;
- `nullable` admits null, `x-kubernetes-list-type: set|map` demands unique items/keys;
- `int32`/`int64` formats are range-checked; Go's mid-pattern `(?i)` is moved first;
- CEL rules (`x-kubernetes-validations`) cannot be evaluated here: each rule the
  CRDs carry has a Python equivalent below, and an unknown rule is an error, so a
  new CRD release with new rules fails until it is translated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from jsonschema import Draft4Validator, FormatChecker, ValidationError

from tests.charts.chart import VALUE_SETS, Obj, load_values, merge_values, render

CRD_DIR = Path(__file__).parent / "crds"
CRD_SETS = sorted(p.name for p in CRD_DIR.iterdir() if p.is_dir())
KEDA_SETS = [s for s in CRD_SETS if s.startswith("keda-v")]
KEDA_HTTP_SETS = [s for s in CRD_SETS if s.startswith("keda-http-add-on-")]
PROMETHEUS_SETS = [s for s in CRD_SETS if s.startswith("prometheus-operator-")]
WORKER_CONTROLLER_SETS = [s for s in CRD_SETS if s.startswith("temporal-worker-controller-")]

# Every custom-resource kind the chart can render. A new one fails
# test_every_custom_resource_kind_is_validated until its CRD is added to crds/.
EXPECTED_KINDS = {
    ("keda.sh", "ScaledObject"),
    ("keda.sh", "TriggerAuthentication"),
    ("http.keda.sh", "HTTPScaledObject"),
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("monitoring.coreos.com", "PodMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
    ("temporal.io", "WorkerDeployment"),
    ("temporal.io", "Connection"),
}

# Every toggle that emits a custom resource, on. Temporal's own scrape target exists
# only in dev mode and the TriggerAuthentication only with an external Temporal API
# key, so both modes are rendered.
_ALL_CRS = {
    "functions": {
        "ingress": {"enabled": True, "host": "orderflow.example.com"},
        "scaleToZero": {"mode": "keda-http"},
    },
    "orderWorker": {"keda": {"enabled": True}},
    "shippingWorker": {"keda": {"enabled": True}},
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "monitoring"}},
        "podMonitor": {"enabled": True, "labels": {"release": "monitoring"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "monitoring"}},
    },
}


# Worker Versioning replaces the workers' Deployments (and their scalers: KEDA is
# refused with it), so it has renderings of its own, with a Progressive rollout.
_VERSIONED = {
    "workerVersioning": {
        "enabled": True,
        "rollout": {
            "strategy": "Progressive",
            "steps": [
                {"rampPercentage": 10, "pauseDuration": "30s"},
                {"rampPercentage": 50, "pauseDuration": "2m"},
            ],
        },
    },
    "metrics": _ALL_CRS["metrics"],
}
_EXTERNAL_NO_KEDA = merge_values(
    load_values(VALUE_SETS["external"]), {"orderWorker": {"keda": {"enabled": False}}}
)
_ALL_TOGGLES = ("all-crs-dev", "all-crs-external", "versioned-dev", "versioned-external")

RENDERINGS: dict[str, dict[str, Any]] = {
    **{name: load_values(path) for name, path in VALUE_SETS.items()},
    "all-crs-dev": _ALL_CRS,
    "all-crs-external": merge_values(load_values(VALUE_SETS["external"]), _ALL_CRS),
    "versioned-dev": _VERSIONED,
    "versioned-external": merge_values(_EXTERNAL_NO_KEDA, _VERSIONED),
}


@cache
def _rendered_objects(name: str) -> tuple[Obj, ...]:
    return tuple(render(RENDERINGS[name]).objects)


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _is_builtin(api_version: str) -> bool:
    group, _ = _group_version(api_version)
    return group == "" or "." not in group or group.endswith(".k8s.io")


def _custom_resources(name: str) -> list[Obj]:
    return [o for o in _rendered_objects(name) if not _is_builtin(o["apiVersion"])]


# --- the CRDs, their schemas made checkable by jsonschema ---------------------------


@cache
def _crds(crd_set: str) -> dict[tuple[str, str], Obj]:
    crds: dict[tuple[str, str], Obj] = {}
    for path in sorted((CRD_DIR / crd_set).glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        assert crd["kind"] == "CustomResourceDefinition", path
        crds[(crd["spec"]["group"], crd["spec"]["names"]["kind"])] = crd
    assert crds, f"no CRDs in {crd_set}"
    return crds


def _crd_sets_for(group: str, kind: str) -> list[str]:
    return [s for s in CRD_SETS if (group, kind) in _crds(s)]


def _k8s_to_jsonschema(schema: Any) -> Any:
    """The Kubernetes structural-schema extensions as plain JSON Schema (draft 4)."""
    if isinstance(schema, list):
        return [_k8s_to_jsonschema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        key: (
            {k: _k8s_to_jsonschema(v) for k, v in value.items()}
            if key == "properties"
            else _k8s_to_jsonschema(value)
        )
        for key, value in schema.items()
        if key not in {"description", "default", "example"}
    }
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)  # controller-gen already writes the anyOf; the rest may not
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    pattern = out.get("pattern")
    if isinstance(pattern, str) and "(?i)" in pattern:
        # Go's RE2 takes a flag group anywhere (after the ^ here); Python only first.
        out["pattern"] = "(?i)" + pattern.replace("(?i)", "")
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if out.get("type") == "object" and "properties" in out and not preserve:
        out.setdefault("additionalProperties", False)
    if out.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def _list_map_keys(
    validator: Any, keys: list[str], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not isinstance(instance, list) or schema.get("x-kubernetes-list-type") != "map":
        return
    seen = [tuple(item.get(k) for k in keys) for item in instance if isinstance(item, dict)]
    if len(seen) != len(set(seen)):
        yield ValidationError(f"duplicate list-map keys {keys}: {seen}")


# The CEL rules in the CRDs, in Python: rule text -> holds(self).
CEL_RULES: dict[str, Callable[[dict[str, Any]], bool]] = {
    # keda.sh ScaledObject spec (2.18+)
    "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount)"
    " ? self.maxReplicaCount : 100)": lambda s: (
        "minReplicaCount" not in s or s["minReplicaCount"] <= s.get("maxReplicaCount", 100)
    ),
    # http.keda.sh HTTPScaledObject scaleTargetRef and coldStartTimeoutFailoverRef
    "has(self.portName) != has(self.port)": lambda s: ("portName" in s) != ("port" in s),
    # temporal.io WorkerDeployment (worker controller 1.8)
    "size(self.metadata.name) <= 63": lambda s: len(s["metadata"]["name"]) <= 63,
    "self.strategy != 'Progressive' || (has(self.steps) && size(self.steps) > 0)": lambda s: (
        s["strategy"] != "Progressive" or bool(s.get("steps"))
    ),
    "!has(self.gate) || !has(self.gate.inputFrom) || (has(self.gate.inputFrom.configMapKeyRef)"
    " != has(self.gate.inputFrom.secretKeyRef))": lambda s: (
        "inputFrom" not in s.get("gate", {})
        or ("configMapKeyRef" in s["gate"]["inputFrom"])
        != ("secretKeyRef" in s["gate"]["inputFrom"])
    ),
    "duration(self.pauseDuration) >= duration('30s')": lambda s: (
        _go_duration(s["pauseDuration"]) >= 30
    ),
    # temporal.io Connection spec
    "!(has(self.mutualTLSSecretRef) && has(self.apiKeySecretRef))": lambda s: (
        not ("mutualTLSSecretRef" in s and "apiKeySecretRef" in s)
    ),
}

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def _go_duration(text: str) -> float:
    """Seconds in a Go duration ("1h30m", "30s"); ValueError if it is not one (CEL's
    duration() fails then, and the API server rejects the object)."""
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("+"):
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


def _cel_validations(
    validator: Any, rules: list[dict[str, str]], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    for rule in rules:
        holds = CEL_RULES.get(rule["rule"])
        if holds is None:
            yield ValidationError(f"CEL rule with no Python equivalent in the test: {rule}")
        elif isinstance(instance, dict):
            try:
                ok = holds(instance)
            except TypeError:  # wrong types: the schema's own type errors report it
                ok = True
            except ValueError:  # the rule cannot be evaluated (a bad duration): rejected
                ok = False
            if not ok:
                yield ValidationError(rule.get("message", rule["rule"]))


_FORMATS = FormatChecker()


@_FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


_K8sValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    Draft4Validator,
    {"x-kubernetes-list-map-keys": _list_map_keys, "x-kubernetes-validations": _cel_validations},
)


@cache
def _validator(crd_set: str, group: str, kind: str, version: str) -> Any:
    crd = _crds(crd_set)[(group, kind)]
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _k8s_to_jsonschema(entry["schema"]["openAPIV3Schema"])
    Draft4Validator.check_schema(schema)
    return _K8sValidator(schema, format_checker=_FORMATS)


def _served_versions(crd_set: str, group: str, kind: str) -> set[str]:
    crd = _crds(crd_set)[(group, kind)]
    return {
        v["name"]
        for v in crd["spec"]["versions"]
        if v.get("served") and not v.get("deprecated", False)
    }


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def crd_errors(obj: Obj, crd_set: str) -> list[str]:
    """What the API server with this CRD set would reject in obj (empty: valid)."""
    group, version = _group_version(obj["apiVersion"])
    served = _served_versions(crd_set, group, obj["kind"])
    if version not in served:
        return [f"apiVersion {obj['apiVersion']} not served (served: {sorted(served)})"]
    errors = [
        f"{'.'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in _validator(crd_set, group, obj["kind"], version).iter_errors(obj)
    ]
    # The CRD schema leaves metadata to the API server: its name and label rules.
    meta = obj["metadata"]
    name = meta.get("name", "")
    if not (len(name) <= 253 and _DNS_SUBDOMAIN.match(name)):
        errors.append(f"metadata.name {name!r} is not a DNS subdomain")
    for key, value in (meta.get("labels") or {}).items():
        if not (isinstance(value, str) and len(value) <= 63 and _LABEL_VALUE.match(value)):
            errors.append(f"metadata.labels.{key}: {value!r} is not a label value")
    return errors


# --- the tests ----------------------------------------------------------------------


def _cases() -> Iterator[Any]:
    for name in RENDERINGS:
        for crd_set in CRD_SETS:
            yield pytest.param(name, crd_set, id=f"{name}-{crd_set}")


@pytest.mark.parametrize(("name", "crd_set"), list(_cases()))
def test_custom_resources_match_the_crd_schemas(name: str, crd_set: str) -> None:
    problems = []
    for obj in _custom_resources(name):
        group, _ = _group_version(obj["apiVersion"])
        if (group, obj["kind"]) not in _crds(crd_set):
            continue
        for error in crd_errors(obj, crd_set):
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {error}")
    assert not problems, "\n".join(problems)


def test_every_custom_resource_kind_is_validated() -> None:
    found = {
        (_group_version(o["apiVersion"])[0], o["kind"])
        for name in RENDERINGS
        for o in _custom_resources(name)
    }
    assert found == EXPECTED_KINDS
    for group, kind in found:
        assert _crd_sets_for(group, kind), f"no CRD for {group}/{kind} in {CRD_DIR}"


def test_the_all_toggles_renderings_emit_every_kind() -> None:
    found = {
        (_group_version(o["apiVersion"])[0], o["kind"])
        for name in _ALL_TOGGLES
        for o in _custom_resources(name)
    }
    assert found == EXPECTED_KINDS


def test_every_cel_rule_in_the_crds_is_translated() -> None:
    rules: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            rules.update(r["rule"] for r in node.get("x-kubernetes-validations", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for crd_set in CRD_SETS:
        walk([crd["spec"] for crd in _crds(crd_set).values()])
    assert rules == set(CEL_RULES)


# --- the validator rejects what the API server would --------------------------------


def _one(kind: str, name: str = "all-crs-external") -> Obj:
    for obj in _custom_resources(name):
        if obj["kind"] == kind:
            return copy.deepcopy(obj)
    raise KeyError(kind)


@pytest.mark.parametrize("crd_set", KEDA_SETS)
def test_rejects_a_scaled_object_with_a_string_replica_count(crd_set: str) -> None:
    obj = _one("ScaledObject")
    assert crd_errors(obj, crd_set) == []
    obj["spec"]["minReplicaCount"] = "one"
    (error,) = crd_errors(obj, crd_set)
    assert error.startswith("spec.minReplicaCount:") and "integer" in error


@pytest.mark.parametrize("crd_set", KEDA_SETS)
def test_rejects_an_unknown_field_and_an_unserved_api_version(crd_set: str) -> None:
    obj = _one("TriggerAuthentication")
    assert crd_errors(obj, crd_set) == []
    obj["spec"]["secretTargetRef"][0]["secretKey"] = "typo"
    (error,) = crd_errors(obj, crd_set)
    assert "secretKey" in error and "Additional properties" in error
    obj = _one("ScaledObject")
    obj["apiVersion"] = "keda.sh/v1beta1"
    (error,) = crd_errors(obj, crd_set)
    assert "not served" in error


def test_rejects_min_replicas_above_max_where_keda_has_the_cel_rule() -> None:
    obj = _one("ScaledObject")
    obj["spec"]["minReplicaCount"] = obj["spec"]["maxReplicaCount"] + 1
    assert crd_errors(obj, "keda-v2.17.0") == []  # no such rule before 2.18
    assert crd_errors(obj, "keda-v2.20.2") == [
        "spec: minReplicaCount must be less than or equal to maxReplicaCount"
    ]


@pytest.mark.parametrize("crd_set", PROMETHEUS_SETS)
def test_rejects_a_prometheus_rule_without_expr(crd_set: str) -> None:
    obj = _one("PrometheusRule")
    assert crd_errors(obj, crd_set) == []
    rule = obj["spec"]["groups"][0]["rules"][0]
    del rule["expr"]
    errors = crd_errors(obj, crd_set)
    assert errors == ["spec.groups.0.rules.0: 'expr' is a required property"], errors


@pytest.mark.parametrize("crd_set", PROMETHEUS_SETS)
def test_int_or_string_takes_both_and_nothing_else(crd_set: str) -> None:
    obj = _one("ServiceMonitor")
    endpoint = obj["spec"]["endpoints"][0]
    for target_port in (9101, "http"):
        endpoint["targetPort"] = target_port
        assert crd_errors(obj, crd_set) == []
    endpoint["targetPort"] = [9101]
    (error,) = crd_errors(obj, crd_set)
    assert error.startswith("spec.endpoints.0.targetPort:")


@pytest.mark.parametrize("crd_set", KEDA_HTTP_SETS)
def test_rejects_an_http_scaled_object_with_both_port_and_port_name(crd_set: str) -> None:
    obj = _one("HTTPScaledObject")
    assert crd_errors(obj, crd_set) == []
    obj["spec"]["scaleTargetRef"]["portName"] = "http"
    assert crd_errors(obj, crd_set) == [
        "spec.scaleTargetRef: must define either the 'portName' or the 'port'"
    ]
    del obj["spec"]["scaleTargetRef"]["portName"]
    obj["spec"]["replicas"]["min"] = "0"
    (error,) = crd_errors(obj, crd_set)
    assert error.startswith("spec.replicas.min:") and "integer" in error
    del obj["spec"]["replicas"]["min"]
    obj["spec"]["scaledownPeriodSeconds"] = 300  # a plausible typo: pruned by the API server
    (error,) = crd_errors(obj, crd_set)
    assert "scaledownPeriodSeconds" in error


@pytest.mark.parametrize("crd_set", WORKER_CONTROLLER_SETS)
def test_rejects_worker_deployments_the_controller_would_not_take(crd_set: str) -> None:
    obj = _one("WorkerDeployment", "versioned-dev")
    assert crd_errors(obj, crd_set) == []
    rollout = obj["spec"]["rollout"]
    rollout["steps"][0]["pauseDuration"] = "10s"
    assert crd_errors(obj, crd_set) == ["spec.rollout.steps.0: pause duration must be at least 30s"]
    rollout["steps"][0]["pauseDuration"] = "soon"
    assert crd_errors(obj, crd_set) == ["spec.rollout.steps.0: pause duration must be at least 30s"]
    del rollout["steps"]
    assert crd_errors(obj, crd_set) == ["spec.rollout: steps are required for Progressive rollout"]
    obj = _one("WorkerDeployment", "versioned-dev")
    obj["spec"]["workerOptions"]["unsafeCustomBuildID"] = "-0.1.0"
    (error,) = crd_errors(obj, crd_set)
    assert error.startswith("spec.workerOptions.unsafeCustomBuildID:"), error
    obj = _one("WorkerDeployment", "versioned-dev")
    obj["metadata"]["name"] = "w" * 64
    assert crd_errors(obj, crd_set) == ["<root>: name cannot be more than 63 characters"]
    obj = _one("WorkerDeployment", "versioned-dev")
    obj["apiVersion"] = "temporal.io/v1"
    (error,) = crd_errors(obj, crd_set)
    assert "not served" in error


@pytest.mark.parametrize("crd_set", WORKER_CONTROLLER_SETS)
def test_rejects_a_connection_with_both_client_certificate_and_api_key(crd_set: str) -> None:
    obj = _one("Connection", "versioned-external")
    assert "apiKeySecretRef" in obj["spec"] and crd_errors(obj, crd_set) == []
    obj["spec"]["mutualTLSSecretRef"] = {"name": "temporal-client-tls"}
    assert crd_errors(obj, crd_set) == [
        "spec: Only one of mutualTLSSecretRef or apiKeySecretRef may be set"
    ]
