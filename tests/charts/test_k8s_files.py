"""The files users apply by hand: kind-config.yaml, k8s/*.yaml, the Makefile targets."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import kubernetes_validate
import yaml

from orderflow.settings import REPO_ROOT
from tests.charts.chart import KUBE_VERSION, load_values, merge_values, render, render_set
from tests.charts.test_crd_schemas import CRD_SETS, crd_errors

K8S = REPO_ROOT / "k8s"


def _load(name: str) -> Any:
    return yaml.safe_load((REPO_ROOT / name).read_text())


def test_every_k8s_file_opens_with_prerequisites_and_a_command() -> None:
    for path in sorted(K8S.glob("*.yaml")):
        head = path.read_text().split("\n\n")[0]
        assert head.startswith("#"), path.name
        assert re.search(r"(helm|kubectl|make) ", head), path.name
        assert "Prerequisites" in head or "see k8s/" in head, path.name
        assert list(yaml.safe_load_all(path.read_text())), path.name


def test_kind_cluster_maps_the_node_ports_the_values_use() -> None:
    cluster = _load("kind-config.yaml")
    roles = [n["role"] for n in cluster["nodes"]]
    assert roles.count("control-plane") == 1 and roles.count("worker") >= 2
    mapped = {m["containerPort"]: m["hostPort"] for m in cluster["nodes"][0]["extraPortMappings"]}
    kind = render_set("kind")
    api = kind.get("Service", "orderflow-functions")["spec"]["ports"][0]["nodePort"]
    ui = kind.get("Service", "orderflow-temporal-ui")["spec"]["ports"][0]["nodePort"]
    grafana = _load("k8s/kube-prometheus-stack-values.yaml")["grafana"]["service"]["nodePort"]
    assert mapped == {api: 8080, ui: 18233, grafana: 3000}
    # Order and shipping workers land on the nodes labelled for them.
    pools = {n.get("labels", {}).get("orderflow.io/pool") for n in cluster["nodes"]}
    for worker, pool in (("order-worker", "orders"), ("shipping-worker", "shipping")):
        spec = kind.get("Deployment", f"orderflow-{worker}")["spec"]["template"]["spec"]
        assert spec["nodeSelector"] == {"orderflow.io/pool": pool} and pool in pools


def test_loadtest_job_is_valid_and_parameterised() -> None:
    job = _load("k8s/loadtest-job.yaml")
    kubernetes_validate.validate(job, KUBE_VERSION, strict=True)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # loadtest/k8s_load.py fills these in per release (tests/loadtest/test_k8s_load.py).
    for var in ("RATE", "DURATION", "TARGET_URL"):
        assert f'"${var}"' in container["command"][2], var
        assert var in env
    assert container["command"][:2] == ["sh", "-c"]
    assert container["command"][2].startswith("locust -f loadtest/locustfile.py --headless")
    api = render_set("kind").get("Service", "orderflow-functions")
    assert env["TARGET_URL"] == (
        f"http://{api['metadata']['name']}.orderflow.svc.cluster.local:{api['spec']['ports'][0]['port']}"
    )


def test_monitoring_stack_picks_up_what_the_chart_ships() -> None:
    stack = _load("k8s/kube-prometheus-stack-values.yaml")
    spec = stack["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["ruleSelectorNilUsesHelmValues"] is False
    sidecar = stack["grafana"]["sidecar"]["dashboards"]
    (dashboard_cm, *_) = [
        cm
        for cm in render_set("default").kinds("ConfigMap")
        if "grafana_dashboard" in cm["metadata"]["labels"]
    ]
    assert dashboard_cm["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"]
    assert sidecar["folderAnnotation"] in dashboard_cm["metadata"]["annotations"]
    assert sidecar["searchNamespace"] == "ALL"


def test_makefile_has_the_cluster_targets() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in (
        "kind-up",
        "images",
        "deploy",
        "monitoring",
        "keda",
        "scale-to-zero",
        "k8s-load",
        "k8s-smoke",
        "kind-down",
    ):
        assert re.search(rf"^{target}:.*## ", makefile, re.M), target
    for path in re.findall(r"(?:k8s|charts)/[\w./-]+\.yaml", makefile):
        assert (REPO_ROOT / path).exists(), path


def test_scale_to_zero_values_on_kind_render_valid_objects() -> None:
    values = merge_values(
        load_values(K8S / "kind-values.yaml"), _load("k8s/scale-to-zero-values.yaml")
    )
    rendered = render(values)
    (httpso,) = rendered.kinds("HTTPScaledObject")
    assert httpso["spec"]["replicas"]["min"] == 0
    assert {o["spec"]["minReplicaCount"] for o in rendered.kinds("ScaledObject")} == {0}
    assert not rendered.kinds("HorizontalPodAutoscaler")
    for obj in rendered.kinds("HTTPScaledObject") + rendered.kinds("ScaledObject"):
        group = obj["apiVersion"].split("/")[0]
        sets = [
            s
            for s in CRD_SETS
            if (s.startswith("keda-http") if group == "http.keda.sh" else s.startswith("keda-v"))
        ]
        assert sets
        for crd_set in sets:
            assert crd_errors(obj, crd_set) == [], (obj["metadata"]["name"], crd_set)


def test_make_help_lists_every_target_by_name() -> None:
    """The Makefile includes k8s/versions.env: help must read the Makefile alone."""
    result = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.strip()}
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert listed == set(re.findall(r"^([a-z0-9-]+):.*## ", makefile, re.M))
