"""Render charts/orderflow offline with Helm's Go SDK (helm-python-sdk, Helm v4)
and hand the tests plain Kubernetes objects."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from orderflow.settings import REPO_ROOT

CHART_DIR = REPO_ROOT / "charts" / "orderflow"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
KIND_VALUES = REPO_ROOT / "k8s" / "kind-values.yaml"
RELEASE = "orderflow"
NAMESPACE = "orderflow"
KUBE_VERSION = "1.31"
APP_IMAGE_REPOSITORY = "orderflow"

# What the chart is rendered with in the tests: the defaults, every ci/ file, kind's values.
VALUE_SETS: dict[str, Path | None] = {
    "default": None,
    **{path.name.removesuffix("-values.yaml"): path for path in CI_VALUES},
    "kind": KIND_VALUES,
}

Obj = dict[str, Any]


def load_values(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    loaded: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return loaded


def merge_values(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base`` as Helm merges values files (maps merge, the rest replaces)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@cache
def _chart() -> helm.Chart:
    return helm.Chart.load(CHART_DIR)


@dataclass(frozen=True)
class Rendered:
    values: dict[str, Any]
    objects: list[Obj]
    notes: str

    def kinds(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj:
        for obj in self.kinds(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{kind}/{name} not rendered")

    def workloads(self) -> Iterator[Obj]:
        """Objects that carry a pod template (or are a Pod)."""
        for obj in self.objects:
            if obj["kind"] in {"Deployment", "StatefulSet", "Job", "Pod"}:
                yield obj

    def config_data(self) -> dict[str, str]:
        data: dict[str, str] = self.get("ConfigMap", f"{RELEASE}-config")["data"]
        return data


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = (
        workload["spec"] if workload["kind"] == "Pod" else workload["spec"]["template"]["spec"]
    )
    return spec


def pod_metadata(workload: Obj) -> Obj:
    meta: Obj = (
        workload["metadata"]
        if workload["kind"] == "Pod"
        else workload["spec"]["template"]["metadata"]
    )
    return meta


def is_app_image(container: Obj) -> bool:
    return str(container["image"]).split(":")[0] == APP_IMAGE_REPOSITORY


@cache
def render_set(name: str) -> Rendered:
    return render(load_values(VALUE_SETS[name]))


def render(values: dict[str, Any], release: str = RELEASE, namespace: str = NAMESPACE) -> Rendered:
    manifests = _chart().render(values, name=release, namespace=namespace, is_install=True)
    objects: list[Obj] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(values=_chart().merge_values(values), objects=objects, notes=notes)


def lint(values: dict[str, Any]) -> dict[str, Any]:
    return helm.lint(
        CHART_DIR, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}.0"
    )
