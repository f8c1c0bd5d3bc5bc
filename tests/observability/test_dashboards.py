"""The committed dashboards are what the generator writes, and are well-formed."""

from __future__ import annotations

import json
import re

from observability import dashboards
from observability.prometheus import RULES_FILE
from observability.scope import scoped
from tests.observability.promql import dashboard_queries, metric_names, rule_expressions


def test_committed_dashboards_are_up_to_date() -> None:
    expected = dashboards.files()
    on_disk = {p: p.read_text() for p in dashboards.DASHBOARD_DIR.glob("*.json")}
    assert set(on_disk) == set(expected), "run `make dashboards` and commit the result"
    for path, text in expected.items():
        assert on_disk[path] == text, f"{path.name} is stale: run `make dashboards`"


def test_dashboards_have_stable_uids_a_datasource_variable_and_units() -> None:
    uids = [d.uid for d in dashboards.DASHBOARDS]
    assert len(set(uids)) == len(uids)
    assert {
        "orderflow-orders",
        "orderflow-activities",
        "orderflow-workers",
        "orderflow-api",
    } <= set(uids)
    for path in dashboards.DASHBOARD_DIR.glob("*.json"):
        dash = json.loads(path.read_text())
        variables = dash["templating"]["list"]
        assert any(v["type"] == "datasource" and v["name"] == "datasource" for v in variables)
        ids = [p["id"] for p in dash["panels"]]
        assert len(set(ids)) == len(ids)
        for panel in dash["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


def test_metric_name_extraction_reads_what_queries_read() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, step) "
        '(rate(a_bucket{outcome="x"}[$__rate_interval])))'
        " / on (job) group_left (component) b_info or vector(0)"
    )
    assert metric_names(expr) == {"a_bucket", "b_info"}
    rules = dict(rule_expressions(RULES_FILE.read_text()))
    assert "OrdersStuck" in rules
    assert metric_names(rules["OrdersStuck"]) == {"orderflow_orders_open_oldest_update_age_seconds"}


def test_every_panel_reads_a_metric() -> None:
    for uid, title, expr in dashboard_queries(dashboards.DASHBOARD_DIR):
        assert metric_names(expr), f"{uid} / {title}: {expr}"


def test_every_query_is_scoped_to_the_chosen_namespaces() -> None:
    """Without it, two releases in one Prometheus were added up on every panel."""
    for path in dashboards.DASHBOARD_DIR.glob("*.json"):
        dash = json.loads(path.read_text())
        (variable,) = [v for v in dash["templating"]["list"] if v["name"] == "namespace"]
        assert variable["includeAll"] and variable["allValue"] == ".*"
    for uid, title, expr in dashboard_queries(dashboards.DASHBOARD_DIR):
        selectors = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr)
        scoped = {m for m, labels in selectors if dashboards.NAMESPACE_MATCHER in labels}
        assert metric_names(expr) <= scoped, f"{uid} / {title}: {expr}"


def test_scoping_adds_one_matcher_to_every_selector() -> None:
    matcher = 'namespace=~"$namespace"'
    assert scoped('sum by (le) (rate(a_bucket{x="y"}[5m])) or b * 0', matcher) == (
        'sum by (le) (rate(a_bucket{namespace=~"$namespace",x="y"}[5m]))'
        ' or b{namespace=~"$namespace"} * 0'
    )
    assert scoped("x * on (job, instance) group_left (component) info", matcher) == (
        'x{namespace=~"$namespace"} * on (job, instance) group_left (component)'
        ' info{namespace=~"$namespace"}'
    )
    assert scoped('max(a{s="}"}) > 0.5', matcher) == 'max(a{namespace=~"$namespace",s="}"}) > 0.5'
