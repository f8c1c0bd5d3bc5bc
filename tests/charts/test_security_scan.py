"""checkov (offline: --skip-download) over the rendered manifests of every value
set and over the Dockerfile. Every finding is fixed or accepted below, with the
reason that docs/kubernetes.md repeats."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from orderflow.settings import REPO_ROOT
from tests.charts.chart import VALUE_SETS, render_set

# Installed by the Makefile into its own virtualenv: its pinned dependencies would
# fight the project's.
CHECKOV = REPO_ROOT / ".venv" / "tools" / "checkov" / "bin" / "checkov"

ACCEPTED = {
    "CKV_K8S_15": "imagePullPolicy Always: kind loads images locally (pullPolicy Never); "
    "IfNotPresent is the right default for tagged images",
    "CKV_K8S_43": "image digests: kind-loaded images have none; pin digests in your own values",
    "CKV_K8S_35": "secrets as env vars: the settings are read from the environment "
    "(twelve-factor, orderflow/settings.py); the values come from Secrets, never literals",
    "CKV_K8S_40": "high UID: the official postgres image runs as its own postgres user (999), "
    "which owns the data directory",
    "CKV_K8S_8": "liveness probe on the helm test pod: it runs one smoke order and exits",
    "CKV_K8S_9": "readiness probe on the helm test pod: it serves nothing",
}
# Which objects each accepted finding may hit; anything else is a new problem.
ACCEPTED_ONLY_ON = {
    "CKV_K8S_40": {"StatefulSet.orderflow.orderflow-postgres"},
    "CKV_K8S_8": {"Pod.orderflow.orderflow-smoke"},
    "CKV_K8S_9": {"Pod.orderflow.orderflow-smoke"},
}


def dockerfile_as_built_by_default() -> str:
    """The Dockerfile with its build arguments' defaults put in, so checkov judges the
    base image users get (it does not resolve ARG: `FROM ${BASE_IMAGE}` reads as untagged)."""
    text = (REPO_ROOT / "Dockerfile").read_text()
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    assert "BASE_IMAGE" in defaults
    return re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m[1], m[0]), text)


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One checkov run (its start-up is most of its time) over the rendered manifests
    of every value set and the Dockerfile; the report per framework."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} missing: run `make setup` (it installs checkov there)")
    scan = tmp_path_factory.mktemp("checkov")
    for name in VALUE_SETS:
        (scan / f"{name}.yaml").write_text(yaml.safe_dump_all(render_set(name).objects))
    (scan / "Dockerfile").write_text(dockerfile_as_built_by_default())
    result = subprocess.run(
        [
            str(CHECKOV),
            "--skip-download",
            "--quiet",
            "--compact",
            "-o",
            "json",
            "--framework",
            "kubernetes",
            "dockerfile",
            "-d",
            str(scan),
        ],
        capture_output=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(scan)},
    )
    assert result.returncode in (0, 1), result.stderr.decode()[-3000:]
    reports = json.loads(result.stdout)
    return {r["check_type"]: r for r in (reports if isinstance(reports, list) else [reports])}


def test_rendered_manifests_have_only_accepted_findings(
    findings: dict[str, dict[str, Any]],
) -> None:
    report = findings["kubernetes"]
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] > 100
    unexpected = []
    for finding in report["results"]["failed_checks"]:
        check, resource = finding["check_id"], finding["resource"]
        if check not in ACCEPTED or resource not in ACCEPTED_ONLY_ON.get(check, {resource}):
            unexpected.append(
                f"{check} {finding['check_name']}: {resource} ({finding['file_path']})"
            )
    assert not unexpected, "\n".join(unexpected)


def test_dockerfile_has_no_findings(findings: dict[str, dict[str, Any]]) -> None:
    report = findings["dockerfile"]
    assert report["summary"]["passed"] > 0
    assert report["results"]["failed_checks"] == []


def test_every_accepted_finding_is_documented() -> None:
    doc = (REPO_ROOT / "docs" / "kubernetes.md").read_text()
    assert [check for check in ACCEPTED if check not in doc] == []
