"""workerVersioning.enabled: each worker a WorkerDeployment of Temporal's worker
controller instead of its Deployment (docs/kubernetes.md#worker-versioning).

Offline: what the chart renders, that the pods' settings name the Worker Deployment
version the controller registers, and what `helm rollback` gives back. The objects are
validated against the controller's CRDs in test_crd_schemas.py (renderings
`versioned-*`); the controller itself does not run here.
"""

from __future__ import annotations

import copy
from typing import Any

import helm_python as helm
import pytest
import yaml

from orderflow.settings import Settings
from tests.charts.chart import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    VALUE_SETS,
    Obj,
    Rendered,
    lint,
    load_values,
    merge_values,
    pod_spec,
    render,
    render_set,
)
from workers import process

WORKERS = ("order-worker", "shipping-worker")
APP_VERSION = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
VERSIONED: dict[str, Any] = {"workerVersioning": {"enabled": True}}
# The worker controller names a Temporal Worker Deployment <k8s namespace>/<object name>
# (computeWorkerDeploymentName, WorkerDeploymentNameSeparator "/", in
# internal/k8s/deployments.go at the pinned release).
CONTROLLER_SEPARATOR = "/"
VERSION_ENV = {"WORKER_VERSIONING", "WORKER_DEPLOYMENT_PREFIX", "WORKER_BUILD_ID"}


def _versioned(tag: str = "", **more: Any) -> Rendered:
    values = merge_values(VERSIONED, more)
    if tag:
        values = merge_values(values, {"image": {"tag": tag}})
    return render(values)


def _env(template_spec: Obj) -> dict[str, str]:
    (container,) = template_spec["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_off_by_default_the_workers_are_deployments() -> None:
    rendered = render_set("default")
    assert not rendered.kinds("WorkerDeployment") and not rendered.kinds("Connection")
    for worker in WORKERS:
        deployment = rendered.get("Deployment", f"{RELEASE}-{worker}")
        assert not VERSION_ENV & set(_env(pod_spec(deployment)))


def test_each_worker_is_a_worker_deployment_with_the_deployments_pod_template() -> None:
    unversioned, versioned = render_set("default"), _versioned()
    for worker in WORKERS:
        name = f"{RELEASE}-{worker}"
        wd = versioned.get("WorkerDeployment", name)
        with pytest.raises(KeyError):
            versioned.get("Deployment", name)
        assert not [
            o
            for o in versioned.objects
            if o["kind"] in {"HorizontalPodAutoscaler", "ScaledObject"}
            and o["spec"]["scaleTargetRef"]["name"] == name
        ]
        assert wd["spec"]["replicas"] == 1
        # The pod template is the Deployment's, plus the three versioning settings: every
        # check of the Deployment's pods (contract, hardening, probes) holds for it.
        template = copy.deepcopy(wd["spec"]["template"])
        (container,) = template["spec"]["containers"]
        container["env"] = [e for e in container["env"] if e["name"] not in VERSION_ENV]
        assert template == unversioned.get("Deployment", name)["spec"]["template"]
        # The Service, PDB and NetworkPolicies select the versions' pods by these labels.
        selector = versioned.get("Service", name)["spec"]["selector"]
        assert selector.items() <= template["metadata"]["labels"].items()


@pytest.mark.parametrize("tag", ["", "0.2.0-dev.abc1234"])
def test_the_pods_settings_name_the_version_the_controller_registers(tag: str) -> None:
    rendered = _versioned(tag)
    build = tag or APP_VERSION  # image.tag defaults to the chart's appVersion
    for worker in WORKERS:
        wd = rendered.get("WorkerDeployment", f"{RELEASE}-{worker}")
        env = _env(wd["spec"]["template"]["spec"])
        (container,) = wd["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"orderflow:{build}"
        assert wd["spec"]["workerOptions"]["unsafeCustomBuildID"] == build
        settings = Settings.model_validate(
            {k.lower(): v for k, v in env.items() if k in VERSION_ENV}
        )
        config = process.deployment_config(settings, worker)
        assert config is not None and config.use_worker_versioning
        # What the worker registers is what the controller looks for.
        controller_name = f"{NAMESPACE}{CONTROLLER_SEPARATOR}{wd['metadata']['name']}"
        assert config.version.deployment_name == controller_name
        assert config.version.build_id == build
        assert wd["spec"]["workerOptions"]["temporalNamespace"] == "default"


def test_an_image_pinned_by_digest_is_its_own_version() -> None:
    # Before: the build id was the tag alone, so another image under a reused tag ran as
    # the same version, and orders pinned to it replayed on new code.
    builds = set()
    for digest in ("sha256:" + "a" * 64, "sha256:" + "b" * 64):
        rendered = _versioned("0.1.0", image={"digest": digest})
        for worker in WORKERS:
            wd = rendered.get("WorkerDeployment", f"{RELEASE}-{worker}")
            build = wd["spec"]["workerOptions"]["unsafeCustomBuildID"]
            assert _env(wd["spec"]["template"]["spec"])["WORKER_BUILD_ID"] == build
            builds.add(build)
    assert builds == {"0.1.0-aaaaaaaaaaaa", "0.1.0-bbbbbbbbbbbb"}


def test_a_name_the_chart_would_cut_is_refused() -> None:
    # The worker registers <namespace>/<fullname>-<kind> whole; Kubernetes names stop at 63.
    with pytest.raises(helm.HelmError, match="is cut to"):
        _versioned(fullnameOverride="o" * 50)


def test_the_connection_is_the_temporal_the_pods_use() -> None:
    dev = _versioned()
    (connection,) = dev.kinds("Connection")
    for worker in WORKERS:
        ref = dev.get("WorkerDeployment", f"{RELEASE}-{worker}")["spec"]["workerOptions"]
        assert ref["connectionRef"]["name"] == connection["metadata"]["name"]
    # Dialled by the controller from its own namespace: the full name.
    assert connection["spec"] == {
        "hostPort": f"{RELEASE}-temporal.{NAMESPACE}.svc.cluster.local:7233"
    }
    external_values = merge_values(
        load_values(VALUE_SETS["external"]),
        merge_values(VERSIONED, {"orderWorker": {"keda": {"enabled": False}}}),
    )
    external = render(external_values)
    (connection,) = external.kinds("Connection")
    assert connection["spec"] == {
        "hostPort": "temporal-frontend.temporal.svc.cluster.local:7233",
        "tls": {"serverName": "temporal-frontend.temporal.svc.cluster.local"},
        "apiKeySecretRef": {"name": "temporal-api-key", "key": "api-key"},
    }
    wd = external.get("WorkerDeployment", f"{RELEASE}-order-worker")
    assert wd["spec"]["workerOptions"]["temporalNamespace"] == "orders-prod"
    # TLS with system CAs and no credentials: before, the Connection said nothing of TLS
    # and the controller (v1.8.1) dialled plaintext.
    tls_only = merge_values(
        external_values,
        {
            "temporal": {
                "external": {"tls": {"existingSecret": ""}, "apiKey": {"existingSecret": ""}}
            }
        },
    )
    (connection,) = render(tls_only).kinds("Connection")
    assert connection["spec"] == {
        "hostPort": "temporal-frontend.temporal.svc.cluster.local:7233",
        "tls": {"serverName": "temporal-frontend.temporal.svc.cluster.local"},
    }


def test_the_dev_temporal_admits_the_controller() -> None:
    policy = _versioned().get("NetworkPolicy", f"{RELEASE}-temporal")
    sources = policy["spec"]["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "temporal-system"}}
    } in sources


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"shippingWorker": {"keda": {"enabled": True}}},
            "shippingWorker.keda.enabled cannot be combined with workerVersioning.enabled",
        ),
        ({"image": {"tag": "-rc1"}}, 'the image tag "-rc1" is the build id'),
        (
            {
                "temporal": {
                    "mode": "external",
                    "external": {
                        "address": "temporal.example.com:7233",
                        "tls": {"enabled": True, "existingSecret": "temporal-client-tls"},
                    },
                }
            },
            "with temporal.external.tls.existingSecret .* is not supported yet",
        ),
    ],
    ids=["keda", "bad-build-id", "client-certificate"],
)
def test_refused_combinations(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(merge_values(VERSIONED, values))


def test_lint_strict_is_clean_with_versioning() -> None:
    report = lint(VERSIONED)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


# --- helm rollback ------------------------------------------------------------------


def _paths(a: Any, b: Any, at: str = "") -> set[str]:
    """Where a and b differ, as dotted paths (env entries by name)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {p for k in a.keys() | b.keys() for p in _paths(a.get(k), b.get(k), f"{at}.{k}")}
    if (
        isinstance(a, list)
        and isinstance(b, list)
        and all(isinstance(x, dict) and "name" in x for x in a + b)
    ):
        return _paths({x["name"]: x for x in a}, {x["name"]: x for x in b}, at)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return {
            p for i, (x, y) in enumerate(zip(a, b, strict=True)) for p in _paths(x, y, f"{at}.{i}")
        }
    return set() if a == b else {at}


def test_helm_rollback_gives_the_worker_deployment_back_its_image_and_build_id() -> None:
    """Revision 1 with image tag A, revision 2 with B, `helm rollback <release> 1`: Helm
    applies revision 1's manifests again, rendered from its values. The
    WorkerDeployment's target is A again, image and build id, and nothing else about it
    changed between the revisions: the controller makes A current again (new orders run
    A's code) while B's Deployment stays until the orders pinned to B have drained."""
    a, b = "0.1.0", "0.2.0"
    revision_1, revision_2, rolled_back = _versioned(a), _versioned(b), _versioned(a)
    assert rolled_back.objects == revision_1.objects  # deterministic: the same manifests
    for worker in WORKERS:
        name = f"{RELEASE}-{worker}"
        on_a = revision_1.get("WorkerDeployment", name)
        on_b = revision_2.get("WorkerDeployment", name)
        assert _paths(on_a, on_b) == {
            ".metadata.labels.app.kubernetes.io/version",
            ".spec.template.metadata.labels.app.kubernetes.io/version",
            ".spec.workerOptions.unsafeCustomBuildID",
            ".spec.template.spec.containers.worker.image",
            ".spec.template.spec.containers.worker.env.WORKER_BUILD_ID.value",
            # The ConfigMap's version label (its data are the same) changes its checksum.
            ".spec.template.metadata.annotations.checksum/config",
        }
        config = [r.get("ConfigMap", f"{RELEASE}-config") for r in (revision_1, revision_2)]
        assert _paths(config[0], config[1]) == {".metadata.labels.app.kubernetes.io/version"}
        back = rolled_back.get("WorkerDeployment", name)
        assert back["spec"]["workerOptions"]["unsafeCustomBuildID"] == a
        assert _env(back["spec"]["template"]["spec"])["WORKER_BUILD_ID"] == a
        (container,) = back["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"orderflow:{a}"
        # Same object, same Temporal Worker Deployment: the controller's name for it and
        # the pods' prefix do not move with the release.
        assert back["metadata"]["name"] == on_b["metadata"]["name"]
        assert (
            _env(back["spec"]["template"]["spec"])["WORKER_DEPLOYMENT_PREFIX"]
            == _env(on_b["spec"]["template"]["spec"])["WORKER_DEPLOYMENT_PREFIX"]
        )
