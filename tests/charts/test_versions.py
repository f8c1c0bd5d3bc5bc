"""Everything the kind path and `make prod-install` install is pinned, in one place
(k8s/versions.env), and the files that run them use those pins; `make prod-install`
has values of its own; the kind cluster's host ports do not clash with `make run`'s."""

from __future__ import annotations

import re
import subprocess

import yaml

from orderflow.settings import REPO_ROOT, Settings
from tests.charts.chart import load_values, render
from tests.charts.test_crd_schemas import CRD_SETS

VERSIONS_FILE = REPO_ROOT / "k8s" / "versions.env"
MAKEFILE = REPO_ROOT / "Makefile"
PROD_INSTALL = REPO_ROOT / "k8s" / "prod-install.sh"
PROD_VALUES = REPO_ROOT / "k8s" / "prod-values.yaml"


def versions() -> dict[str, str]:
    pins = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", key) and value and " " not in value, line
            pins[key] = value
    return pins


def _make_dry_run(*targets: str, **variables: str) -> list[str]:
    """The shell lines `make -n` would run, continuation lines joined."""
    args = [f"{k}={v}" for k, v in variables.items()]
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", *targets, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [line for line in result.stdout.replace("\\\n", " ").splitlines() if line.strip()]


def _version_of(line: str) -> str | None:
    match = re.search(r"--version\s+\"?([^\s\"]+)", line)
    return match[1] if match else None


def test_every_helm_install_of_the_kind_path_is_pinned_from_versions_env() -> None:
    pins = versions()
    lines = _make_dry_run("kind-up", "monitoring", "keda", "scale-to-zero")
    installs = [line for line in lines if "helm upgrade --install" in line]
    charts = {line.split()[4]: _version_of(line) for line in installs}
    assert charts == {
        "metrics-server/metrics-server": pins["METRICS_SERVER_CHART_VERSION"],
        "prometheus-community/kube-prometheus-stack": pins["KPS_CHART_VERSION"],
        "kedacore/keda": pins["KEDA_CHART_VERSION"],
        "kedacore/keda-add-ons-http": pins["KEDA_HTTP_ADD_ON_CHART_VERSION"],
    }
    # make keda and make scale-to-zero install the same KEDA.
    keda = [_version_of(line) for line in installs if " kedacore/keda " in line]
    assert keda == [pins["KEDA_CHART_VERSION"]] * 2
    (create,) = [line for line in lines if line.startswith("kind create cluster")]
    assert f"--image {pins['KIND_NODE_IMAGE']}" in create


def test_a_version_on_the_command_line_wins() -> None:
    lines = _make_dry_run("keda", KEDA_CHART_VERSION="9.9.9")
    assert any("kedacore/keda" in line and _version_of(line) == "9.9.9" for line in lines)


def test_no_version_is_written_anywhere_but_versions_env() -> None:
    for path in (MAKEFILE, PROD_INSTALL):
        for line in path.read_text().splitlines():
            if "--version" in line:
                assert re.search(r"--version \"?\$[({]?[A-Z_]+", line), (path.name, line)
    # The node image and chart versions are not repeated as literals.
    text = MAKEFILE.read_text() + PROD_INSTALL.read_text()
    for value in versions().values():
        assert value not in text, value


def test_the_pins_are_the_releases_checked_here() -> None:
    pins = versions()
    assert f"keda-v{pins['KEDA_CHART_VERSION']}" in CRD_SETS
    assert f"keda-http-add-on-v{pins['KEDA_HTTP_ADD_ON_CHART_VERSION']}" in CRD_SETS
    # Not installed by a target (docs/kubernetes.md#worker-versioning), but validated against.
    assert f"temporal-worker-controller-v{pins['TEMPORAL_WORKER_CONTROLLER_VERSION']}" in CRD_SETS
    # The node image is Kubernetes 1.31, the version the objects are validated for.
    assert re.fullmatch(r"kindest/node:v1\.31\.\d+(@sha256:[0-9a-f]{64})?", pins["KIND_NODE_IMAGE"])


def test_prod_install_reads_versions_env_and_its_own_values() -> None:
    pins = versions()
    result = subprocess.run(
        ["make", "--no-print-directory", "prod-install", "DRY_RUN=1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = result.stdout.replace("\\\n", " ").splitlines()
    installs = {
        line.split()[5]: line for line in lines if line.startswith("+ helm upgrade --install")
    }
    for chart, key in (
        ("prometheus-community/kube-prometheus-stack", "KPS_CHART_VERSION"),
        ("cnpg/cloudnative-pg", "CNPG_CHART_VERSION"),
        ("temporal/temporal", "TEMPORAL_CHART_VERSION"),
        ("kedacore/keda", "KEDA_CHART_VERSION"),
    ):
        assert _version_of(installs[chart]) == pins[key], chart
    orderflow = installs["charts/orderflow"]
    assert "-f k8s/prod-values.yaml" in orderflow and "kind-values" not in orderflow


def test_prod_values_have_flaky_off_and_nothing_of_kind() -> None:
    values = load_values(PROD_VALUES)
    assert values["config"]["flaky"] == "off"
    assert values["image"]["pullPolicy"] != "Never"
    text = yaml.safe_dump(values)
    assert "nodeSelector" not in text and "NodePort" not in text and "nodePort" not in text
    rendered = render(values)
    assert rendered.config_data()["FLAKY"] == "off"
    assert not [s for s in rendered.kinds("Service") if s["spec"].get("type") == "NodePort"]


def test_kind_host_ports_do_not_clash_with_make_run() -> None:
    cluster = yaml.safe_load((REPO_ROOT / "kind-config.yaml").read_text())
    host_ports = {
        m["hostPort"] for node in cluster["nodes"] for m in node.get("extraPortMappings", [])
    }
    defaults = Settings.model_fields
    local_ports = {
        field.default
        for name, field in defaults.items()
        if name.endswith("_port") and isinstance(field.default, int) and field.default > 0
    }
    assert 8233 in local_ports  # make run's Temporal UI
    assert not host_ports & local_ports, host_ports & local_ports
