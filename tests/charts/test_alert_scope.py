"""The alert rules, as the chart installs them, see only this release: every selector
names the release's namespace and one of its jobs (or Deployments), whatever the
release and namespace are called, and the monitors give the scraped series those jobs."""

from __future__ import annotations

import re

import pytest

from tests.charts.chart import Rendered, render
from tests.observability.promql import metric_names

MONITORING = {
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
    }
}
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!=|!~|=)\s*"([^"]*)"')


def expressions(rendered: Rendered) -> list[tuple[str, str]]:
    (rule,) = rendered.kinds("PrometheusRule")
    return [
        (r.get("alert") or r["record"], r["expr"])
        for group in rule["spec"]["groups"]
        for r in group["rules"]
    ]


@pytest.mark.parametrize(
    ("release", "namespace", "fullname"),
    [("orderflow", "orderflow", "orderflow"), ("shop", "payments", "shop-orderflow")],
)
def test_every_selector_names_the_namespace_and_a_job_of_the_release(
    release: str, namespace: str, fullname: str
) -> None:
    rendered = render(MONITORING, release=release, namespace=namespace)
    scraped_jobs = {
        ep["relabelings"][0]["replacement"]
        for kind, key in (("ServiceMonitor", "endpoints"), ("PodMonitor", "podMetricsEndpoints"))
        for monitor in rendered.kinds(kind)
        for ep in monitor["spec"][key]
    }
    deployments = {d["metadata"]["name"] for d in rendered.kinds("Deployment")}
    for name, expr in expressions(rendered):
        selected = {metric for metric, _ in SELECTOR.findall(expr)}
        raw = {m for m in metric_names(expr) if not m.startswith("orderflow:")}
        assert raw <= selected, f"{name}: a metric read without a selector: {raw - selected}"
        for metric, matchers in SELECTOR.findall(expr):
            labels = {k: (op, v) for k, op, v in MATCHER.findall(matchers)}
            assert labels.get("namespace") == ("=", namespace), (name, metric)
            if metric.startswith("kube_deployment"):
                op, value = labels["deployment"]
                assert op == "=" and value in deployments, (name, value)
                continue
            op, value = labels["job"]
            jobs = {value} if op == "=" else {j for j in scraped_jobs if re.fullmatch(value, j)}
            assert jobs and jobs <= scraped_jobs, (name, metric, value)
            assert value.startswith(f"{fullname}-"), (name, value)


def test_monitors_name_the_job_alike() -> None:
    rendered = render(MONITORING)
    for kind, key in (("ServiceMonitor", "endpoints"), ("PodMonitor", "podMetricsEndpoints")):
        for monitor in rendered.kinds(kind):
            (endpoint,) = monitor["spec"][key]
            assert endpoint["relabelings"] == [
                {"targetLabel": "job", "replacement": monitor["metadata"]["name"]}
            ]
