"""The chart's conventions as values: security contexts (no UID fixed in a template),
pod labels and annotations, per-component env and volumes, spread and priority, image
digests, ServiceAccount annotations, revision history, HPA behaviour, the smoke pod's
resources, the version label from the image tag, PostgreSQL without a PVC.
ci/conventions-values.yaml sets them all (and every other chart test renders it too)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.charts.chart import CHART_DIR, Obj, pod_metadata, pod_spec, render, render_set

CONVENTIONS = render_set("conventions")
VALUES = CONVENTIONS.values
OWN = {"orderflow-functions", "orderflow-order-worker", "orderflow-shipping-worker"}


def _workloads(rendered: Any) -> dict[str, Obj]:
    return {w["metadata"]["name"]: w for w in rendered.workloads()}


def test_no_template_fixes_a_uid() -> None:
    """Fixed UIDs break where the platform assigns them: they are values now."""
    fixed = re.compile(r"runAs(User|Group)|fsGroup|\b(10001|999)\b")
    for template in (CHART_DIR / "templates").rglob("*"):
        if template.is_file():
            assert not fixed.search(template.read_text()), template.name


def test_security_contexts_come_from_values_and_can_drop_the_uids() -> None:
    """OpenShift's restricted SCC assigns the UID: null removes the fixed ones."""
    no_uids = {"runAsUser": None, "runAsGroup": None, "fsGroup": None}
    values = {
        "podSecurityContext": no_uids,
        "temporal": {"dev": {"podSecurityContext": no_uids}},
        "postgres": {"builtin": {"podSecurityContext": no_uids}},
    }
    rendered = render(values)
    for name, workload in _workloads(rendered).items():
        spec = pod_spec(workload)
        assert not set(no_uids) & set(spec["securityContext"]), name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            assert "runAsUser" not in container["securityContext"], name
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
    # The defaults are the images' users.
    default = _workloads(render_set("default"))
    assert pod_spec(default["orderflow-functions"])["securityContext"]["runAsUser"] == 10001
    assert pod_spec(default["orderflow-postgres"])["securityContext"]["runAsUser"] == 999


def test_pod_labels_and_annotations_are_added_not_replacing_the_charts() -> None:
    for name, workload in _workloads(CONVENTIONS).items():
        meta = pod_metadata(workload)
        assert meta["labels"]["team"] == "orders", name
        assert meta["annotations"]["example.com/owner"] == "orders-team", name
    functions = pod_metadata(_workloads(CONVENTIONS)["orderflow-functions"])
    assert functions["labels"]["tier"] == "api"
    assert functions["annotations"]["example.com/tier"] == "api"
    assert "checksum/config" in functions["annotations"]
    assert functions["labels"]["orderflow.io/database-client"] == "true"
    # A podLabel cannot move a pod out of its Deployment's selector.
    rendered = render({"podLabels": {"app.kubernetes.io/component": "x"}})
    for deployment in rendered.kinds("Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_metadata(deployment)["labels"].items()


def test_extra_env_and_volumes_per_component() -> None:
    workloads = _workloads(CONVENTIONS)
    for name, component in (
        ("orderflow-functions", "functions"),
        ("orderflow-order-worker", "orderWorker"),
        ("orderflow-shipping-worker", "shippingWorker"),
    ):
        spec = pod_spec(workloads[name])
        (container,) = spec["containers"]
        given = VALUES[component]
        assert all(e in container["env"] for e in given["extraEnv"]), name
        assert all(v in spec["volumes"] for v in given["extraVolumes"]), name
        assert all(m in container["volumeMounts"] for m in given["extraVolumeMounts"]), name


def test_spread_and_priority() -> None:
    workloads = _workloads(CONVENTIONS)
    functions = pod_spec(workloads["orderflow-functions"])
    assert functions["priorityClassName"] == "orderflow-critical"
    (spread,) = functions["topologySpreadConstraints"]
    selector = workloads["orderflow-functions"]["spec"]["selector"]
    assert spread["labelSelector"] == selector  # filled in: this component's pods
    (given,) = pod_spec(workloads["orderflow-order-worker"])["topologySpreadConstraints"]
    assert given == VALUES["orderWorker"]["topologySpreadConstraints"][0]  # kept as given
    assert pod_spec(workloads["orderflow-temporal"])["priorityClassName"] == "orderflow-critical"
    assert "priorityClassName" not in pod_spec(
        _workloads(render_set("default"))["orderflow-functions"]
    )


def test_images_by_digest_and_the_version_label_from_the_tag() -> None:
    digest = VALUES["image"]["digest"]
    for name, workload in _workloads(CONVENTIONS).items():
        for container in pod_spec(workload)["containers"]:
            if name in {"orderflow-temporal", "orderflow-postgres"}:
                assert re.fullmatch(r"[\w/.-]+:[\w.-]+@sha256:[0-9a-f]{64}", container["image"])
            else:
                assert container["image"] == f"orderflow:1.2.3@{digest}", name
    for obj in CONVENTIONS.objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/version"] == "1.2.3"
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    for obj in render_set("default").objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/version"] == chart["appVersion"]


def test_service_account_annotations_history_hpa_behaviour_and_smoke_resources() -> None:
    (account,) = CONVENTIONS.kinds("ServiceAccount")
    assert account["metadata"]["annotations"] == VALUES["serviceAccount"]["annotations"]
    for workload in CONVENTIONS.kinds("Deployment") + CONVENTIONS.kinds("StatefulSet"):
        assert workload["spec"]["revisionHistoryLimit"] == 5
    hpas = {h["metadata"]["name"]: h for h in CONVENTIONS.kinds("HorizontalPodAutoscaler")}
    assert (
        hpas["orderflow-functions"]["spec"]["behavior"]
        == VALUES["functions"]["autoscaling"]["behavior"]
    )
    assert "behavior" not in hpas["orderflow-shipping-worker"]["spec"]
    smoke = CONVENTIONS.get("Pod", "orderflow-smoke")
    assert smoke["spec"]["containers"][0]["resources"] == VALUES["tests"]["smoke"]["resources"]


def test_postgres_without_a_pvc() -> None:
    statefulset = CONVENTIONS.get("StatefulSet", "orderflow-postgres")
    assert "volumeClaimTemplates" not in statefulset["spec"]
    volumes = {v["name"]: v for v in pod_spec(statefulset)["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    default = render_set("default").get("StatefulSet", "orderflow-postgres")
    assert default["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert "data" not in {v["name"] for v in pod_spec(default)["volumes"]}


def test_chart_yaml_names_its_maintainers() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert all(m["name"] and "@" in m["email"] for m in chart["maintainers"])
