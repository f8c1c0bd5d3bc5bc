"""The production path (`make prod-install`, docs/kubernetes.md "Production install"),
offline, against the upstream charts and CRDs kept verbatim in tests/charts/upstream/
(sources and licences in its README):

- the commands `make prod-install DRY_RUN=1` prints, in order, with pinned versions
  that are the versions kept here, and values files that exist and parse;
- k8s/temporal-values.yaml: every key is a key of the pinned Temporal chart's
  values.yaml (or one of the few documented free-form places), and the real chart
  renders with it, pointing at the CloudNativePG Service, databases and Secret;
- k8s/temporal-postgres-cluster.yaml against the CloudNativePG 1.30.0 CRDs;
- k8s/otel-collector-values.yaml: keys and the chart's own values.schema.json, the
  rendered collector, and Orderflow's `otel.collector` toggle pointing at its Service.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft4Validator, ValidationError

from orderflow.settings import REPO_ROOT, Settings
from tests.charts.chart import KUBE_VERSION, Obj, lint, load_values, render, render_set
from tests.charts.test_contract import app_containers, container_env
from tests.charts.test_crd_schemas import (
    _FORMATS,
    CRD_SETS,
    PROMETHEUS_SETS,
    _k8s_to_jsonschema,
    _list_map_keys,
    crd_errors,
)

UPSTREAM = Path(__file__).parent / "upstream"
TEMPORAL_CHART = UPSTREAM / "temporal-helm-1.6.0"
OTEL_CHART = UPSTREAM / "opentelemetry-collector-0.170.0"
CNPG_DIR = UPSTREAM / "cloudnative-pg-v1.30.0"
K8S = REPO_ROOT / "k8s"
TEMPORAL_VALUES = K8S / "temporal-values.yaml"
POSTGRES_CLUSTER = K8S / "temporal-postgres-cluster.yaml"
OTEL_VALUES = K8S / "otel-collector-values.yaml"
EXTERNAL_TEMPORAL_VALUES = K8S / "orderflow-external-temporal-values.yaml"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _chart_version(chart: Path) -> str:
    return str(_yaml(chart / "Chart.yaml")["version"])


# --- make prod-install DRY_RUN=1 ----------------------------------------------------


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]

    def option(self, *names: str) -> str | None:
        for i, arg in enumerate(self.argv):
            if arg in names:
                return self.argv[i + 1]
        return None

    def options(self, name: str) -> list[str]:
        return [self.argv[i + 1] for i, arg in enumerate(self.argv) if arg == name]


@cache
def _dry_run(otel: bool) -> tuple[tuple[str, ...], tuple[Command, ...]]:
    out = subprocess.run(
        ["make", "-s", "prod-install", "DRY_RUN=1", f"OTEL={int(otel)}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    steps = tuple(line for line in out.splitlines() if re.match(r"==> \[\d+/\d+\] ", line))
    commands = tuple(
        Command(tuple(shlex.split(line[2:]))) for line in out.splitlines() if line.startswith("+ ")
    )
    return steps, commands


def _installs(otel: bool = True) -> dict[str, Command]:
    """release -> its `helm upgrade --install` command."""
    return {
        c.argv[3]: c for c in _dry_run(otel)[1] if c.argv[:3] == ("helm", "upgrade", "--install")
    }


def _summary(command: Command) -> tuple[str, ...]:
    argv = command.argv
    if argv[:3] == ("helm", "upgrade", "--install"):
        return ("install", argv[3], argv[4], command.option("--version") or "-")
    if argv[:3] == ("helm", "repo", "add"):
        return ("repo", argv[3])
    return argv[:3] if argv[0] == "kubectl" else argv[:2]


@pytest.mark.parametrize("otel", [False, True], ids=["without-otel", "with-otel"])
def test_prod_install_dry_run_prints_the_steps_in_order(otel: bool) -> None:
    steps, commands = _dry_run(otel)
    repos = [("repo", r) for r in ("prometheus-community", "cnpg", "temporal", "kedacore")]
    collector = [("install", "otel-collector", "open-telemetry/opentelemetry-collector", "0.170.0")]
    assert [_summary(c) for c in commands] == [
        *repos,
        *([("repo", "open-telemetry")] if otel else []),
        ("install", "monitoring", "prometheus-community/kube-prometheus-stack", "88.5.3"),
        ("install", "cnpg", "cnpg/cloudnative-pg", "0.29.0"),
        ("kubectl", "apply", "-f"),
        ("kubectl", "-n", "temporal"),
        ("kubectl", "-n", "temporal"),
        ("install", "temporal", "temporal/temporal", "1.6.0"),
        ("install", "keda", "kedacore/keda", "2.20.2"),
        *(collector if otel else []),
        ("create_secret_once", "orderflow"),  # the database password
        ("create_secret_once", "orderflow"),  # the payload keys
        ("install", "orderflow", "charts/orderflow", "-"),
        ("helm", "test"),
    ]
    # Numbered progress lines, one per step, counting up to the total.
    total = 9 if otel else 8
    assert [s.split("]")[0] for s in steps] == [f"==> [{i}/{total}" for i in range(1, total + 1)]
    for command in commands:
        if command.argv[:3] == ("helm", "upgrade", "--install"):
            assert "--wait" in command.argv, command
    # The PostgreSQL is Ready (and its second database made) before Temporal installs.
    waits = [c.argv for c in commands if c.argv[:2] == ("kubectl", "-n")]
    assert waits[0][3:6] == ("wait", "--for=condition=Ready", "cluster/temporal-postgres")
    assert waits[1][5] == "database/temporal-postgres-visibility"
    otel_set = "otel.collector.enabled=true"
    assert (otel_set in _installs(otel)["orderflow"].options("--set")) is otel


def test_prod_install_files_exist_and_parse() -> None:
    for otel in (False, True):
        for command in _dry_run(otel)[1]:
            for arg in (*command.options("-f"), *command.argv[3:5]):
                if arg.startswith(("k8s/", "charts/")):
                    path = REPO_ROOT / arg
                    assert path.exists(), arg
                    if path.is_file():
                        assert list(yaml.safe_load_all(path.read_text())), arg


def test_prod_install_pins_the_versions_kept_here() -> None:
    installs = _installs()
    assert installs["temporal"].option("--version") == _chart_version(TEMPORAL_CHART)
    assert installs["otel-collector"].option("--version") == _chart_version(OTEL_CHART)
    # The operator chart's appVersion is the release whose CRDs are kept here.
    operator_chart = _yaml(CNPG_DIR / "cloudnative-pg-chart-0.29.0-Chart.yaml")
    assert installs["cnpg"].option("--version") == operator_chart["version"]
    assert CNPG_DIR.name == f"cloudnative-pg-v{operator_chart['appVersion']}"
    # KEDA's chart version is its release: one whose CRDs test_crd_schemas checks.
    assert f"keda-v{installs['keda'].option('--version')}" in CRD_SETS
    # The headers of the values files name the same versions.
    for values, chart in ((TEMPORAL_VALUES, TEMPORAL_CHART), (OTEL_VALUES, OTEL_CHART)):
        assert f"--version {_chart_version(chart)}" in values.read_text(), values.name


# --- key paths against an upstream values.yaml ---------------------------------------

Path_ = tuple[str, ...]
# A rule for a place where upstream values.yaml has no keys to compare with (an empty
# map, or a value the templates read but values.yaml leaves out): given our value,
# what is wrong with it. Each says where the place is documented or checked instead.
Rule = Callable[[Any], list[str]]


def _matches(pattern: Path_, path: Path_) -> bool:
    return len(pattern) == len(path) and all(
        p in ("*", q) for p, q in zip(pattern, path, strict=True)
    )


def unknown_keys(
    ours: Any, upstream: Any, rules: dict[Path_, Rule], path: Path_ = ()
) -> Iterator[str]:
    """Every key path of `ours` that upstream values do not have (and no rule admits)."""
    for key, value in ours.items():
        here = (*path, str(key))
        where = ".".join(here)
        rule = next((r for pattern, r in rules.items() if _matches(pattern, here)), None)
        if rule is not None:
            yield from (f"{where}: {problem}" for problem in rule(value))
        elif not isinstance(upstream, dict) or key not in upstream:
            yield f"{where}: not in the upstream values"
        elif value is None:
            continue  # null removes an upstream default: the key exists, that is enough
        elif isinstance(upstream[key], dict):
            if not isinstance(value, dict):
                yield f"{where}: a map upstream, {type(value).__name__} here"
            elif not upstream[key]:
                yield f"{where}: an empty map upstream; needs a documented rule"
            else:
                yield from unknown_keys(value, upstream[key], rules, here)
        elif isinstance(upstream[key], list):
            if not isinstance(value, list):
                yield f"{where}: a list upstream, {type(value).__name__} here"
                continue
            item_keys = {k for item in upstream[key] if isinstance(item, dict) for k in item}
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    for k in sorted(set(item) - item_keys):
                        yield f"{where}[{i}].{k}: not a key of the upstream example items"
        elif upstream[key] is not None and type(value) is not type(upstream[key]):
            yield f"{where}: {type(upstream[key]).__name__} upstream, {value!r} here"


def _keys_in(allowed: set[str]) -> Rule:
    return lambda value: [f"{k} not allowed" for k in sorted(set(value) - allowed)]


def _an_int(value: Any) -> list[str]:
    return [] if type(value) is int else [f"{value!r} is not an integer"]


def _checked_when_rendered(value: Any) -> list[str]:
    return [] if isinstance(value, dict) else ["not a map"]


# Temporal: the SQL datastore keys. values.yaml documents them in its commented
# example (test_temporal_sql_keys_are_upstreams_documented_ones holds us to that): the
# server's SQL config plus the chart's own existingSecret/secretKey/createDatabase/
# manageSchema, which it strips before writing the server config.
TEMPORAL_SQL_KEYS = {
    "pluginName",
    "driverName",
    "databaseName",
    "connectAddr",
    "connectProtocol",
    "host",
    "port",
    "user",
    "password",
    "existingSecret",
    "secretKey",
    "passwordCommand",
    "maxConns",
    "maxIdleConns",
    "maxConnLifetime",
    "connectAttributes",
    "tls",
    "createDatabase",
    "manageSchema",
}
TEMPORAL_SERVICES = ("frontend", "history", "matching", "worker", "internal-frontend")


def _temporal_datastore(value: Any) -> list[str]:
    if set(value) != {"sql"}:
        return [f"only sql datastores are used here, not {sorted(value)}"]
    return _keys_in(TEMPORAL_SQL_KEYS)(value["sql"])


TEMPORAL_RULES: dict[Path_, Rule] = {
    ("server", "config", "persistence", "datastores", "*"): _temporal_datastore,
    # Per-service replicas: server-deployment.yaml reads $serviceValues.replicaCount
    # over server.replicaCount (test_temporal_rules_name_what_the_templates_read).
    **{("server", s, "replicaCount"): _an_int for s in TEMPORAL_SERVICES},
    # `podDisruptionBudget: {}` upstream: a PodDisruptionBudget spec, validated on the
    # rendered PDBs.
    **{("server", s, "podDisruptionBudget"): _checked_when_rendered for s in TEMPORAL_SERVICES},
}


def _upstream_values(chart: Path) -> dict[str, Any]:
    values: dict[str, Any] = _yaml(chart / "values.yaml")
    return values


def test_temporal_values_keys_are_the_pinned_charts() -> None:
    problems = list(
        unknown_keys(_yaml(TEMPORAL_VALUES), _upstream_values(TEMPORAL_CHART), TEMPORAL_RULES)
    )
    assert not problems, "\n".join(problems)


def test_temporal_sql_keys_are_upstreams_documented_ones() -> None:
    text = (TEMPORAL_CHART / "values.yaml").read_text()
    block = text[text.index("      datastores:") : text.index("    metrics:\n      # Additional")]
    documented = set(re.findall(r"^\s*#\s+(?:#\s+)?([A-Za-z]+):", block, re.M))
    assert documented >= TEMPORAL_SQL_KEYS, TEMPORAL_SQL_KEYS - documented
    for key in ("existingSecret", "secretKey", "createDatabase", "manageSchema"):
        assert f'"{key}"' in (TEMPORAL_CHART / "templates" / "_helpers.tpl").read_text()


def test_temporal_rules_name_what_the_templates_read() -> None:
    templates = (TEMPORAL_CHART / "templates" / "server-deployment.yaml").read_text()
    assert "$serviceValues.replicaCount" in templates
    pdb = (TEMPORAL_CHART / "templates" / "server-pdb.yaml").read_text()
    assert "$serviceValues.podDisruptionBudget" in pdb
    upstream = _upstream_values(TEMPORAL_CHART)["server"]
    for service in TEMPORAL_SERVICES:
        assert upstream[service]["podDisruptionBudget"] == {}
        assert "replicaCount" not in upstream[service] and "replicaCount" in upstream


def test_the_key_check_rejects_the_keys_of_older_charts() -> None:
    # What k8s/temporal-values.yaml said before the chart was pinned (chart 0.x keys).
    old = {
        "server": {"config": {"persistence": {"default": {"driver": "sql"}}}},
        "cassandra": {"enabled": False},
        "schema": {"setup": {"enabled": True}},
        "web": {"replicaCount": "1"},
    }
    assert sorted(unknown_keys(old, _upstream_values(TEMPORAL_CHART), TEMPORAL_RULES)) == [
        "cassandra: not in the upstream values",
        "schema.setup: not in the upstream values",
        "server.config.persistence.default: not in the upstream values",
        "web.replicaCount: int upstream, '1' here",
    ]
    bad_sql = {"sql": {"databaseName": "t", "database": "t"}}
    assert _temporal_datastore(bad_sql) == ["database not allowed"]
    # And the chart itself refuses them.
    with pytest.raises(helm.HelmRenderError, match="no longer a supported top-level key"):
        _render_upstream(TEMPORAL_CHART, {"cassandra": {"enabled": False}}, "temporal", "temporal")


# --- the Temporal chart rendered with our values -------------------------------------


def _render_upstream(chart: Path, values: dict[str, Any], name: str, namespace: str) -> list[Obj]:
    manifests = helm.Chart.load(chart).render(
        values, name=name, namespace=namespace, is_install=True
    )
    return [
        doc
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def _release(name: str) -> tuple[str, str, dict[str, Any]]:
    """Release name, namespace and values as `make prod-install` installs them."""
    command = _installs()[name]
    (values_file,) = command.options("-f")
    return name, str(command.option("-n")), load_values(REPO_ROOT / values_file)


@cache
def _temporal() -> tuple[Obj, ...]:
    name, namespace, values = _release("temporal")
    return tuple(_render_upstream(TEMPORAL_CHART, values, name, namespace))


def _get(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def _validate_objects(objects: tuple[Obj, ...]) -> list[str]:
    problems = []
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            problems += [f"{where}: {e}" for s in PROMETHEUS_SETS for e in crd_errors(obj, s)]
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            problems.append(f"{where}: {err.message}")
    return problems


def test_temporal_chart_renders_valid_objects() -> None:
    objects = _temporal()
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for service in ("frontend", "history", "matching", "worker"):
        assert ("Deployment", f"temporal-{service}") in kinds
        assert ("ServiceMonitor", f"temporal-{service}") in kinds
    for service in ("frontend", "history", "matching"):
        deployment = _get(objects, "Deployment", f"temporal-{service}")
        assert deployment["spec"]["replicas"] == 3
        pdb = _get(objects, "PodDisruptionBudget", f"temporal-{service}-pdb")
        assert pdb["spec"]["maxUnavailable"] == 1
    problems = _validate_objects(objects)
    assert not problems, "\n".join(problems)


def _cnpg_docs() -> dict[str, Obj]:
    return {d["kind"]: d for d in yaml.safe_load_all(POSTGRES_CLUSTER.read_text())}


def test_temporal_persists_to_the_cloudnative_pg_cluster() -> None:
    docs = _cnpg_docs()
    cluster, database = docs["Cluster"], docs["Database"]
    namespace = cluster["metadata"]["namespace"]
    # CloudNativePG's names: <cluster>-rw is the primary's Service, <cluster>-app the
    # basic-auth Secret of the initdb owner (docs/src/applications.md at v1.30.0).
    rw = f"{cluster['metadata']['name']}-rw.{namespace}.svc.cluster.local:5432"
    secret = f"{cluster['metadata']['name']}-app"
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert database["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert database["metadata"]["namespace"] == namespace == _release("temporal")[1]

    config = _get(_temporal(), "ConfigMap", "temporal-config")["data"]["config_template.yaml"]
    server = yaml.safe_load(re.sub(r"\{\{[^}]*\}\}", "TEMPLATED", config))
    stores = server["persistence"]["datastores"]
    assert {k: v["sql"]["databaseName"] for k, v in stores.items()} == {
        "default": initdb["database"],
        "visibility": database["spec"]["name"],
    }
    for store in stores.values():
        sql = store["sql"]
        assert (sql["pluginName"], sql["connectAddr"]) == ("postgres12", rw)
        assert sql["user"] == initdb["owner"] == database["spec"]["owner"]
        assert sql["password"] == "TEMPLATED"  # from the env below, never a literal

    # Every Temporal container that has a store password reads it from that Secret.
    refs = set()
    for obj in _temporal():
        if obj["kind"] not in {"Deployment", "Job"}:
            continue
        spec = obj["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            for var in container.get("env", []):
                if var["name"].endswith("PASSWORD"):
                    ref = var["valueFrom"]["secretKeyRef"]
                    refs.add((obj["metadata"]["name"], ref["name"], ref["key"]))
    assert {(s, k) for _, s, k in refs} == {(secret, "password")}
    assert {n for n, _, _ in refs} >= {f"temporal-{s}" for s in ("frontend", "history")}

    # The schema job sets up and updates both schemas and creates no database (the
    # operator did; the role may not).
    job = _get(_temporal(), "Job", "temporal-schema")["spec"]["template"]["spec"]
    scripts = " ".join(" ".join(c.get("args", [])) for c in job["initContainers"])
    assert "create-database" not in scripts
    assert scripts.count("setup-schema") == 2 and scripts.count("update-schema") == 2


def test_orderflow_reaches_the_temporal_frontend_and_namespace() -> None:
    external = _yaml(EXTERNAL_TEMPORAL_VALUES)["temporal"]
    _, namespace, values = _release("temporal")
    frontend = _get(_temporal(), "Service", "temporal-frontend")
    (grpc,) = [p for p in frontend["spec"]["ports"] if p["name"] == "grpc-rpc"]
    address = f"temporal-frontend.{namespace}.svc.cluster.local:{grpc['port']}"
    assert external["external"]["address"] == address
    created = [n["name"] for n in values["server"]["config"]["namespaces"]["namespace"]]
    assert values["server"]["config"]["namespaces"]["create"] is True
    assert external["namespace"] in created


# --- the CloudNativePG manifest against the real CRDs --------------------------------

# The CEL rules of the CloudNativePG 1.30.0 Cluster and Database CRDs, in Python
# (as in test_crd_schemas: an untranslated rule fails). `self == oldSelf` rules guard
# updates only: on create there is no oldSelf, and they hold.
_TRANSITION = "self == oldSelf"
CNPG_CEL_RULES: dict[str, Callable[[Any], bool]] = {
    _TRANSITION: lambda s: True,
    "!has(self.builtinLocale) || self.localeProvider == 'builtin'": lambda s: (
        "builtinLocale" not in s or s.get("localeProvider") == "builtin"
    ),
    "!has(self.icuLocale) || self.localeProvider == 'icu'": lambda s: (
        "icuLocale" not in s or s.get("localeProvider") == "icu"
    ),
    "!has(self.icuRules) || self.localeProvider == 'icu'": lambda s: (
        "icuRules" not in s or s.get("localeProvider") == "icu"
    ),
    "self.kind == 'ImageCatalog' || self.kind == 'ClusterImageCatalog'": lambda s: (
        s.get("kind") in {"ImageCatalog", "ClusterImageCatalog"}
    ),
    "self.apiGroup == 'postgresql.cnpg.io'": lambda s: s.get("apiGroup") == "postgresql.cnpg.io",
    "self > 0": lambda s: s > 0,
    "self.dataDurability!='preferred' || ((!has(self.standbyNamesPre) ||"
    " self.standbyNamesPre.size()==0) && (!has(self.standbyNamesPost) ||"
    " self.standbyNamesPost.size()==0))": lambda s: (
        s.get("dataDurability") != "preferred"
        or (not s.get("standbyNamesPre") and not s.get("standbyNamesPost"))
    ),
    "!(has(self.imageCatalogRef) && has(self.imageName))": lambda s: (
        not ("imageCatalogRef" in s and "imageName" in s)
    ),
    "self != ''": lambda s: s != "",
    # Database spec.name: PostgreSQL's own databases are not the operator's to manage.
    **{
        f"self != '{name}'": (lambda n: lambda s: s != n)(name)
        for name in ("postgres", "template0", "template1")
    },
}


def _cnpg_cel(
    validator: Any, rules: list[dict[str, str]], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    for rule in rules:
        holds = CNPG_CEL_RULES.get(" ".join(rule["rule"].split()))
        if holds is None:
            yield ValidationError(f"CEL rule with no Python equivalent in the test: {rule}")
        elif not holds(instance):
            yield ValidationError(rule.get("message", rule["rule"]))


_CnpgValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    Draft4Validator,
    {"x-kubernetes-list-map-keys": _list_map_keys, "x-kubernetes-validations": _cnpg_cel},
)


@cache
def _cnpg_crds() -> dict[str, Obj]:
    crds = {}
    for path in sorted(CNPG_DIR.glob("postgresql.cnpg.io_*.yaml")):
        crd = _yaml(path)
        crds[crd["spec"]["names"]["kind"]] = crd
    return crds


def cnpg_errors(obj: Obj) -> list[str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    crd = _cnpg_crds()[obj["kind"]]
    assert group == crd["spec"]["group"], obj["apiVersion"]
    served = [v for v in crd["spec"]["versions"] if v["name"] == version and v.get("served")]
    if not served:
        return [f"apiVersion {obj['apiVersion']} not served"]
    schema = _k8s_to_jsonschema(served[0]["schema"]["openAPIV3Schema"])
    Draft4Validator.check_schema(schema)
    validator = _CnpgValidator(schema, format_checker=_FORMATS)
    return [
        f"{'.'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in validator.iter_errors(obj)
    ]


def test_every_cel_rule_in_the_cnpg_crds_is_translated() -> None:
    rules: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            rules.update(
                " ".join(r["rule"].split()) for r in node.get("x-kubernetes-validations", [])
            )
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([crd["spec"] for crd in _cnpg_crds().values()])
    assert rules == set(CNPG_CEL_RULES)


def test_postgres_cluster_manifest_matches_the_cnpg_crds() -> None:
    docs = list(yaml.safe_load_all(POSTGRES_CLUSTER.read_text()))
    assert [d["kind"] for d in docs] == ["Namespace", "Cluster", "Database"]
    kubernetes_validate.validate(docs[0], KUBE_VERSION, strict=True)
    for doc in docs[1:]:
        assert cnpg_errors(doc) == [], doc["kind"]
        assert doc["metadata"]["namespace"] == docs[0]["metadata"]["name"]
    cluster = docs[1]["spec"]
    assert cluster["instances"] >= 3 and cluster["affinity"]["enablePodAntiAffinity"] is True


def test_cnpg_validation_rejects_what_the_api_server_would() -> None:
    docs = _cnpg_docs()
    cluster = yaml.safe_load(yaml.safe_dump(docs["Cluster"]))
    cluster["spec"]["imageCatalogRef"] = {
        "apiGroup": "postgresql.cnpg.io",
        "kind": "ImageCatalog",
        "name": "postgresql",
        "major": 17,
    }
    assert cnpg_errors(cluster) == ["spec: imageName and imageCatalogRef are mutually exclusive"]
    cluster = yaml.safe_load(yaml.safe_dump(docs["Cluster"]))
    cluster["spec"]["storage"]["sise"] = "1Gi"
    (error,) = cnpg_errors(cluster)
    assert error.startswith("spec.storage:") and "sise" in error
    database = yaml.safe_load(yaml.safe_dump(docs["Database"]))
    del database["spec"]["owner"]
    assert cnpg_errors(database) == ["spec: 'owner' is a required property"]


# --- the OpenTelemetry Collector and Orderflow's toggle ------------------------------

# Where the collector values are not the chart's keys: `config` is the collector's own
# configuration (merged over the chart's default; checked on the rendered relay config
# below); securityContext and resources are Kubernetes objects (`{}` upstream),
# validated on the rendered Deployment.
OTEL_RULES: dict[Path_, Rule] = {
    ("config",): _checked_when_rendered,
    ("securityContext",): _checked_when_rendered,
    ("resources",): _checked_when_rendered,
}


def test_otel_collector_values_keys_are_the_pinned_charts() -> None:
    problems = list(unknown_keys(_yaml(OTEL_VALUES), _upstream_values(OTEL_CHART), OTEL_RULES))
    assert not problems, "\n".join(problems)
    # The chart's own schema (which Helm enforces on install; the render below too).
    schema = yaml.safe_load((OTEL_CHART / "values.schema.json").read_text())
    merged = helm.Chart.load(OTEL_CHART).merge_values(_yaml(OTEL_VALUES))
    # Its $schema is the unversioned "http://json-schema.org/schema#": the latest draft.
    jsonschema.Draft202012Validator(schema).validate(merged)


@cache
def _collector() -> tuple[Obj, ...]:
    name, namespace, values = _release("otel-collector")
    return tuple(_render_upstream(OTEL_CHART, values, name, namespace))


def test_otel_collector_renders_an_otlp_traces_pipeline() -> None:
    objects = _collector()
    assert {o["kind"] for o in objects} == {"ConfigMap", "Deployment", "Service", "ServiceAccount"}
    problems = _validate_objects(objects)
    assert not problems, "\n".join(problems)
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
    relay = yaml.safe_load(configmap["data"]["relay"])
    pipelines = relay["service"]["pipelines"]
    assert set(pipelines) == {"traces"}
    assert pipelines["traces"]["receivers"] == ["otlp"]
    assert set(relay["receivers"]) == {"otlp"}
    assert set(relay["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    # Every component a pipeline names is configured (the collector refuses to start
    # otherwise), and every configured receiver/exporter is used.
    for kind in ("receivers", "processors", "exporters"):
        used = {c for p in pipelines.values() for c in p[kind]}
        assert used <= set(relay[kind]), kind
        if kind != "processors":
            assert used == set(relay[kind]), kind
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "otel/opentelemetry-collector-k8s:" + str(
        _yaml(OTEL_CHART / "Chart.yaml")["appVersion"]
    )
    assert container["resources"]["limits"]["memory"]  # what memory_limiter works against
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def _otel_env(values: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in render(values).config_data().items() if k.startswith("OTEL_")}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_orderflow_collector_toggle_points_at_the_collector_service(protocol: str) -> None:
    _, namespace, _ = _release("otel-collector")
    (service,) = [o for o in _collector() if o["kind"] == "Service"]
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    port = ports["otlp"] if protocol == "grpc" else ports["otlp-http"]
    host = f"{service['metadata']['name']}.{namespace}.svc.cluster.local"
    values = {"otel": {"collector": {"enabled": True}, "protocol": protocol}}
    assert _otel_env(values) == {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{host}:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
    }
    # The chart's defaults name that release: only `enabled` needs setting.
    defaults = render({}).values["otel"]["collector"]
    assert (defaults["service"], defaults["namespace"]) == (service["metadata"]["name"], namespace)
    # What the long-running processes get parses as their settings and turns tracing
    # on (the migrations Job and the smoke pod send no spans).
    rendered = render(values)
    for workload, container in app_containers(rendered):
        if workload["kind"] != "Deployment":
            continue
        env = container_env(rendered, container)
        settings = Settings.model_validate(
            {
                k.lower(): v
                for k, v in env.items()
                if k.startswith("OTEL_") and k != "OTEL_SERVICE_NAME"
            }
        )
        assert settings.tracing_enabled
        assert settings.otel_exporter_otlp_endpoint == f"http://{host}:{port}"


def test_otel_toggle_off_sets_nothing_and_an_endpoint_wins() -> None:
    assert _otel_env({}) == {}
    assert "OTEL_" not in str(render_set("default").config_data())
    values = {"otel": {"collector": {"enabled": True}, "endpoint": "http://tempo.tracing:4317"}}
    assert _otel_env(values)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://tempo.tracing:4317"
    # An endpoint alone (ci/monitoring-values.yaml) turns the exporter on too: the SDK's
    # default is `none`, so before this the endpoint was set and nothing was sent.
    assert render_set("monitoring").config_data()["OTEL_TRACES_EXPORTER"] == "otlp"


def test_orderflow_with_the_collector_toggle_lints_clean() -> None:
    report = lint({"otel": {"collector": {"enabled": True}}})
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert not report["errors"] and not problems, report
