"""`podman kube play` of the rendered ConfigMap, Deployments and helm-test Pod.

Closer to a cluster than `podman run`: podman itself reads the pod specs, so what it
honours (command, envFrom, secretKeyRef, user, read-only root, capabilities, no new
privileges, limits, restart policy) is taken from the manifests untouched. What
podman 4.3 cannot do here is worked around in the manifests, each named below, and
listed in docs/containers.md:

* `containerPort` with the host network is refused ("PortMappings can only be used
  with Bridge or slirp4netns networking"): the `ports` lists are dropped; the
  processes listen where the ConfigMap says (moved to free ports, as elsewhere).
* a Secret in the YAML is stored as YAML and then read as JSON by secretKeyRef
  ("secret ... is not valid JSON"): the Secret's `data` is created as a podman secret.
* probes become a podman healthcheck (`curl` to port 0 for a named port) that needs
  systemd to run: the tests ask the probe paths themselves.
* an emptyDir becomes a named volume, not a fresh directory per pod; fsGroup is not
  applied.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from orderflow.devstack.launcher import free_port
from tests.charts.chart import RELEASE, Obj, Rendered, pod_spec
from tests.charts.test_contract import APP_PORT_SETTING
from tests.conftest import TEST_PAYLOAD_KEYS
from tests.containers.podman import podman

pytestmark = pytest.mark.containers

# The Secrets the chart never makes and the Deployments read: PGPASSWORD (the session's
# database trusts any password, and its URL replaces the chart's plain DATABASE_URL
# below) and PAYLOAD_KEYS (the tests' key, the one every other test encrypts with).
SECRETS = {
    f"{RELEASE}-postgres-password": {"password": b"kube-play"},
    f"{RELEASE}-payload-keys": {"keys": TEST_PAYLOAD_KEYS.encode()},
}


def with_database(workload: Obj, dsn: str) -> Obj:
    """The chart's DATABASE_URL (a plain value naming its own PostgreSQL) -> ``dsn``."""
    adapted = copy.deepcopy(workload)
    for container in pod_spec(adapted)["containers"]:
        for entry in container.get("env", []):
            if entry["name"] == "DATABASE_URL":
                entry["value"] = dsn
    return adapted


def without_ports(workload: Obj) -> Obj:
    adapted = copy.deepcopy(workload)
    for container in pod_spec(adapted)["containers"]:
        container.pop("ports", None)
    return adapted


def pod_status(pod: str) -> Obj:
    """PID 1's status lines of the pod's one app container."""
    (name,) = [
        n
        for n in podman("pod", "inspect", pod, "--format", "{{range .Containers}}{{.Name}} {{end}}")
        .strip()
        .split()
        if not n.endswith("-infra")
    ]
    lines = podman("exec", name, "cat", "/proc/1/status").splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


@pytest.fixture(scope="module")
def played(
    app_image: str,
    rendered: Rendered,
    postgres_dsn: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, dict[str, int]]]:
    config = copy.deepcopy(rendered.config_data())
    ports = {setting: free_port() for setting in APP_PORT_SETTING.values()}
    config.update({k: str(v) for k, v in ports.items()})
    config["TEMPORAL_ADDRESS"] = temporal_address
    config_map = {**rendered.get("ConfigMap", f"{RELEASE}-config"), "data": config}
    folder = tmp_path_factory.mktemp("kube")
    for name, data in SECRETS.items():
        secret_file = folder / f"{name}.json"
        secret_file.write_text(
            json.dumps({k: base64.b64encode(v).decode() for k, v in data.items()})
        )
        podman("secret", "rm", name, check=False)
        podman("secret", "create", name, str(secret_file))
    manifest = folder / "orderflow.yaml"
    deployments = [
        with_database(without_ports(rendered.get("Deployment", n)), postgres_dsn)
        for n in APP_PORT_SETTING
    ]
    manifest.write_text(yaml.safe_dump_all([config_map, *deployments]))
    # A play that failed half-way leaves pods `--replace` cannot replace: clear them.
    podman("kube", "down", str(manifest), check=False, timeout=120)
    try:
        podman("kube", "play", "--network", "host", "--replace", str(manifest), timeout=180)
        yield manifest, {n: ports[s] for n, s in APP_PORT_SETTING.items()}
    finally:
        podman("kube", "down", str(manifest), check=False, timeout=120)
        for name in SECRETS:
            podman("secret", "rm", name, check=False)


def wait_ready(port: int, within: float = 90) -> Obj:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3)
            if response.status_code == 200:
                body: Obj = response.json()
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"/readyz on {port} not 200 within {within} s")


@pytest.mark.parametrize("name", list(APP_PORT_SETTING))
def test_kube_played_deployment_serves_its_probes(
    rendered: Rendered, played: tuple[Path, dict[str, int]], name: str
) -> None:
    _, ports = played
    wait_ready(ports[name])
    deps = httpx.get(f"http://127.0.0.1:{ports[name]}/dependencies", timeout=5).json()
    assert deps["dependencies"]["temporal"] == deps["dependencies"]["database"] == "ok", deps
    sec = pod_spec(rendered.get("Deployment", name))["securityContext"]
    status = pod_status(f"{name}-pod-0")
    assert set(status["Uid"].split()) == {str(sec["runAsUser"])}
    assert int(status["CapEff"], 16) == 0 and status["NoNewPrivs"].strip() == "1"


def test_kube_played_helm_test_pod_completes_an_order(
    rendered: Rendered, played: tuple[Path, dict[str, int]]
) -> None:
    manifest, ports = played
    for port in ports.values():
        wait_ready(port)
    smoke = copy.deepcopy(rendered.get("Pod", f"{RELEASE}-smoke"))
    (container,) = smoke["spec"]["containers"]
    api = f"http://127.0.0.1:{ports[f'{RELEASE}-functions']}"
    for var in container["env"]:
        if var["name"] == "API_BASE_URL":
            var["value"] = api
    pod_file = manifest.parent / "smoke.yaml"
    pod_file.write_text(yaml.safe_dump(smoke))
    try:
        podman("kube", "play", "--network", "host", "--replace", str(pod_file))
        name = f"{RELEASE}-smoke-{container['name']}"
        code = podman("wait", name, timeout=150).strip()
        logs = podman("logs", name)
        assert code == "0", logs
        assert "smoke order completed" in logs
    finally:
        podman("kube", "down", str(pod_file), check=False)
