"""One version for the package, the image tag and the chart (SemVer), and the
release's paperwork in place (docs/releasing.md)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

import yaml

from functions.main import app
from orderflow.settings import REPO_ROOT
from tests.charts.chart import CHART_DIR, RELEASE, render_set

# semver.org's own regular expression (the numbers part and optional pre-release/build).
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def package_version() -> str:
    return str(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_package_chart_and_image_carry_one_semver() -> None:
    package = package_version()
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert SEMVER.match(package), package
    assert SEMVER.match(chart["version"]), chart["version"]
    # appVersion is the code's version; the chart's own version moves with any chart
    # change and may run ahead of it (a chart-only fix), never behind.
    assert chart["appVersion"] == package
    assert tuple(map(int, chart["version"].split("-")[0].split("."))) >= tuple(
        map(int, package.split("-")[0].split("."))
    )
    # The installed metadata (what the running processes report) is this version too.
    assert version("orderflow") == package
    assert app.version == package
    # With no image.tag set, every own container runs the image of the chart's appVersion.
    deployment = render_set("default").get("Deployment", f"{RELEASE}-order-worker")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"orderflow:{package}"


def test_changelog_has_the_version_and_an_unreleased_section() -> None:
    text = (REPO_ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    assert re.search(rf"^## \[{re.escape(package_version())}\]", text, re.MULTILINE)


def test_upgrade_notes_exist() -> None:
    docs = (REPO_ROOT / "docs" / "kubernetes.md").read_text()
    assert re.search(r"^## Upgrading", docs, re.MULTILINE)
    assert "database-url" in docs and "helm rollback" in docs
