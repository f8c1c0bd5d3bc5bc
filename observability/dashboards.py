"""Grafana dashboards as code: ``python -m observability.dashboards`` (``make dashboards``).

Plain JSON built here (Grafana's dashboard model, schemaVersion 39) rather than
grafana-foundation-sdk: four dashboards of time series and stats need a few
small helpers, not a generated client for every Grafana type, and the output is
easy to review in a diff. The files land in charts/orderflow/dashboards/, which
the Helm chart ships as ConfigMaps for Grafana's dashboard sidecar;
tests/observability checks they are up to date and that every query works
against a real Prometheus scraping the real stack.

Queries use Grafana's ``$__rate_interval`` and ``$__range`` and a ``datasource``
variable, so they work with any Prometheus data source. A ``namespace`` variable (the
namespaces that have Orderflow processes, all by default) scopes every metric a query
reads (observability/scope.py), so two releases in one Prometheus are not added up.
A ratio panel adds ``or <denominator> * 0`` to its numerator: when nothing failed it
shows 0, not "No data".
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from observability.scope import scoped

REPO_ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = REPO_ROOT / "charts" / "orderflow" / "dashboards"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
# Every selector of every query gets it (observability/scope.py).
NAMESPACE_MATCHER = 'namespace=~"$namespace"'
NAMESPACES = "label_values(orderflow_build_info, namespace)"
SLO_SECONDS = 15


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: list[Query]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    description: str = ""
    stack: bool = False
    width: int = 12
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel]


def rate(metric: str, by: str = "", selector: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{selector}[{RATE}]))"


def quantile(q: float, metric: str, by: str = "", selector: str = "") -> str:
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, {rate(f'{metric}_bucket', labels, selector)})"


def share(metric: str, by: str, selector: str) -> str:
    """Share of ``metric`` matching ``selector``, per ``by``; 0 (not empty) when none match."""
    total = rate(metric, by)
    return f"({rate(metric, by, selector)} or {total} * 0) / {total}"


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    custom: dict[str, Any] = {}
    if panel.kind == "timeseries":
        custom = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if panel.stack else 0,
            "showPoints": "never",
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
        }
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit, "custom": custom}, "overrides": []},
        "options": (
            {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
            if panel.kind == "timeseries"
            else {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value",
                "graphMode": "none",
                "textMode": "auto",
            }
        ),
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": scoped(q.expr, NAMESPACE_MATCHER),
                "legendFormat": q.legend or "__auto",
                "range": panel.kind == "timeseries",
                "instant": panel.kind == "stat",
            }
            for i, q in enumerate(panel.queries)
        ],
    }
    body.update(panel.extra)
    return body


def to_json(dash: Dashboard) -> dict[str, Any]:
    panels, x, y = [], 0, 0
    for i, panel in enumerate(dash.panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(_panel_json(panel, i, x, y))
        x += panel.width
    return {
        "uid": dash.uid,
        "title": dash.title,
        "description": dash.description,
        "tags": ["orderflow"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                },
                {
                    "name": "namespace",
                    "label": "Namespace",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "definition": NAMESPACES,
                    "query": {"query": NAMESPACES, "refId": "namespace"},
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {},
                    "hide": 0,
                    "refresh": 2,
                    "sort": 1,
                },
            ]
        },
        "annotations": {"list": []},
        "links": [{"title": "Orderflow", "type": "dashboards", "tags": ["orderflow"]}],
        "panels": panels,
    }


# --- the dashboards -------------------------------------------------------------------

E2E = "orderflow_order_e2e_latency_seconds"
FINISHED = "orderflow_orders_finished_total"
ATTEMPTS = "orderflow_activity_attempts_total"
STEP = "orderflow_step_duration_seconds"
HTTP = "orderflow_http_requests_total"
HTTP_LATENCY = "orderflow_http_request_duration_seconds"
GAVE_UP = '{outcome="gave_up"}'

ORDERS = Dashboard(
    uid="orderflow-orders",
    title="Orderflow / Orders",
    description="Orders started and finished, end-to-end latency against the 15 s objective, "
    "orders in flight.",
    panels=[
        Panel(
            "Orders started and finished",
            [
                Query(rate("orderflow_api_orders_started_total"), "started"),
                Query(rate(FINISHED, "state"), "{{state}}"),
            ],
            unit="ops",
            description="Started by the API; finished by terminal state "
            "(completed, cancelled, failed).",
        ),
        Panel(
            "End-to-end latency of completed orders",
            [
                Query(quantile(q, E2E, selector='{outcome="completed"}'), f"p{int(q * 100)}")
                for q in (0.5, 0.95, 0.99)
            ],
            unit="s",
            description="From the workflow's start to the terminal state, manual review "
            f"included. The objective is {SLO_SECONDS} s.",
            extra={
                "fieldConfig": {
                    "defaults": {
                        "unit": "s",
                        "custom": {"drawStyle": "line", "lineWidth": 1, "showPoints": "never"},
                        "thresholds": {
                            "mode": "absolute",
                            "steps": [
                                {"color": "green", "value": None},
                                {"color": "red", "value": SLO_SECONDS},
                            ],
                        },
                    },
                    "overrides": [],
                }
            },
        ),
        Panel(
            f"Completed within {SLO_SECONDS} s",
            [
                Query(
                    "sum(increase(orderflow_orders_completed_within_slo_total[$__range]))"
                    f' / sum(increase({FINISHED}{{state="completed"}}[$__range]))',
                    "within objective",
                )
            ],
            unit="percentunit",
            kind="stat",
            width=6,
            description="Share of the completed orders in the time range that took at most "
            f"{SLO_SECONDS} s.",
        ),
        Panel(
            "Orders in flight",
            [Query("sum(max by (state) (orderflow_orders_open))", "open")],
            kind="stat",
            width=6,
            description="Orders not in a terminal state, from the database.",
        ),
        Panel(
            "Orders in flight by state",
            [Query("max by (state) (orderflow_orders_open)", "{{state}}")],
            stack=True,
        ),
        Panel(
            "p95 latency by outcome",
            [Query(quantile(0.95, E2E, "outcome"), "{{outcome}}")],
            unit="s",
        ),
        Panel(
            "Stalest open order",
            [
                Query(
                    "max by (state) (orderflow_orders_open_oldest_update_age_seconds)", "{{state}}"
                )
            ],
            unit="s",
            description="Seconds since the least recently changed open order changed, per state. "
            "The OrdersStuck alert watches this.",
        ),
        Panel(
            "Shipping runs",
            [Query(rate("orderflow_shipping_runs_total", "run"), "{{run}}")],
            unit="ops",
            description="Shipping child workflows requested: the first per order, and retries "
            "after a run failed.",
        ),
    ],
)

ACTIVITIES = Dashboard(
    uid="orderflow-activities",
    title="Orderflow / Activities",
    description="Attempts of every step's local activity, their failures and timeouts, "
    "step and attempt latency.",
    panels=[
        Panel(
            "Attempts by activity and outcome",
            [Query(rate(ATTEMPTS, "activity, outcome"), "{{activity}} {{outcome}}")],
            unit="ops",
            width=24,
            stack=True,
        ),
        Panel(
            "Failure rate by activity",
            [Query(share(ATTEMPTS, "activity", '{outcome="error"}'), "{{activity}}")],
            unit="percentunit",
            description="Share of attempts that raised (flaky_call fails one in three).",
        ),
        Panel(
            "Timeout rate by activity",
            [Query(share(ATTEMPTS, "activity", '{outcome="timeout"}'), "{{activity}}")],
            unit="percentunit",
            description="Share of attempts cut at their deadline (flaky_call hangs one in three).",
        ),
        Panel(
            "Step latency p95",
            [Query(quantile(0.95, STEP, "step"), "{{step}}")],
            unit="s",
            description="From a step's first attempt to its success, all retries included.",
        ),
        Panel(
            "Steps given up",
            [
                Query(
                    f"{rate(f'{STEP}_count', 'step', GAVE_UP)}"
                    f" or {rate(f'{STEP}_count', 'step')} * 0",
                    "{{step}}",
                )
            ],
            unit="ops",
            description="Steps that ran out of attempts or budget; each ends its order or "
            "shipping run.",
        ),
        Panel(
            "Attempt latency p95 (SDK)",
            [
                Query(
                    quantile(0.95, "temporal_local_activity_execution_latency", "activity_type"),
                    "{{activity_type}}",
                )
            ],
            unit="s",
            description="One attempt of a local activity as the Temporal SDK measures it.",
        ),
    ],
)

WORKERS = Dashboard(
    uid="orderflow-workers",
    title="Orderflow / Workers",
    description="Replicas, task slots, schedule-to-start latency per task queue, process "
    "resources.",
    panels=[
        Panel(
            "Replicas by component",
            [Query("count by (component) (orderflow_build_info)", "{{component}}")],
            description="Processes answering scrapes, API included.",
        ),
        Panel(
            "Task slots used",
            [
                Query(
                    "sum by (task_queue, worker_type) (temporal_worker_task_slots_used)",
                    "{{task_queue}} {{worker_type}}",
                )
            ],
            description="Workflow tasks and local activities running now, per task queue.",
        ),
        Panel(
            "Workflow task schedule-to-start p95",
            [
                Query(
                    quantile(
                        0.95, "temporal_workflow_task_schedule_to_start_latency", "task_queue"
                    ),
                    "{{task_queue}}",
                )
            ],
            unit="s",
            description="How long workflow tasks wait for a worker: rising means too few "
            "workers or slots.",
        ),
        Panel(
            "Workflow task execution p95",
            [
                Query(
                    quantile(0.95, "temporal_workflow_task_execution_latency", "workflow_type"),
                    "{{workflow_type}}",
                )
            ],
            unit="s",
        ),
        Panel(
            "Pollers",
            [
                Query(
                    "sum by (task_queue, poller_type) (temporal_num_pollers)",
                    "{{task_queue}} {{poller_type}}",
                )
            ],
        ),
        Panel(
            "Resident memory",
            [
                Query(
                    "process_resident_memory_bytes * on (job, instance) group_left (component)"
                    " orderflow_build_info",
                    "{{component}} {{instance}}",
                )
            ],
            unit="bytes",
        ),
        Panel(
            "CPU",
            [
                Query(
                    f"rate(process_cpu_seconds_total[{RATE}]) * on (job, instance)"
                    " group_left (component) orderflow_build_info",
                    "{{component}} {{instance}}",
                )
            ],
            unit="percentunit",
            description="CPU seconds per second (1 = one core).",
        ),
    ],
)

API = Dashboard(
    uid="orderflow-api",
    title="Orderflow / API",
    description="HTTP requests by route template: rate, latency, errors; customer updates.",
    panels=[
        Panel(
            "Requests by route and status",
            [Query(rate(HTTP, "route, status"), "{{route}} {{status}}")],
            unit="reqps",
        ),
        Panel(
            "Latency p95 by route",
            [Query(quantile(0.95, HTTP_LATENCY, "route"), "{{route}}")],
            unit="s",
        ),
        Panel(
            "Server errors (5xx) by route",
            [Query(share(HTTP, "route", '{status=~"5.."}'), "{{route}}")],
            unit="percentunit",
        ),
        Panel(
            "Customer updates by result",
            [
                Query(
                    rate("orderflow_api_order_updates_total", "update, result"),
                    "{{update}} {{result}}",
                )
            ],
            unit="ops",
            description="approve, cancel and update-address sent to orders: accepted, "
            "rejected (409) or failed.",
        ),
        Panel(
            "New orders shed (admission control)",
            [
                Query(rate("orderflow_api_orders_shed_total", "reason"), "shed: {{reason}}"),
                Query(rate("orderflow_api_orders_started_total"), "started"),
            ],
            unit="ops",
            description="Starts refused with 503 + Retry-After because the stack was past "
            "capacity, by the signal that decided (SHED_QUEUE_SECONDS, "
            "SHED_MAX_START_LATENCY_SECONDS), against the starts admitted.",
        ),
        Panel(
            "Admission signals",
            [
                Query("max(orderflow_api_admission_active_orders)", "active orders"),
                Query("max(orderflow_api_admission_active_limit)", "active orders limit"),
                Query(
                    "max(orderflow_api_admission_start_latency_seconds) * 1000",
                    "Temporal start latency (ms, moving average)",
                ),
            ],
            description="What admission control measures: orders being processed (not "
            "awaiting approval) against the limit measured from how fast the stack "
            "finishes them, and how long Temporal takes to accept a start. Shedding "
            "starts above either limit.",
        ),
        Panel(
            "Admission: a new order's expected processing time",
            [
                Query(
                    "max(orderflow_api_admission_expected_processing_seconds)",
                    "expected (active / completion rate)",
                ),
                Query("max(orderflow_api_admission_completion_rate)", "orders ended per second"),
            ],
            description="The promise behind the shed decision: by Little's law, how long a "
            "new order would spend being processed on average. Starts are refused past "
            "SHED_QUEUE_SECONDS (4.5 s: what kept admitted orders inside 15 s at twice the knee).",
        ),
        Panel(
            "Status long polls",
            [
                Query("sum(orderflow_api_status_waits)", "waiting now"),
                Query("min(orderflow_api_order_listener_up)", "listener proven (1)"),
                Query(rate("orderflow_api_order_listener_lost_total"), "listener lost /s"),
                Query(rate("orderflow_api_status_waits_capped_total"), "answered at once (cap) /s"),
                Query(rate("orderflow_api_status_waits_abandoned_total"), "client left /s"),
            ],
            description="Requests held by status?wait, whether each API process's LISTEN "
            "connection is proven by its keepalive (waits re-read every second while it is "
            "not), and waits answered early: past STATUS_MAX_WAITS, or because the client left.",
        ),
    ],
)

DASHBOARDS = [ORDERS, ACTIVITIES, WORKERS, API]


def render(dash: Dashboard) -> str:
    return json.dumps(to_json(dash), indent=2, sort_keys=True) + "\n"


def files() -> dict[Path, str]:
    return {DASHBOARD_DIR / f"{d.uid}.json": render(d) for d in DASHBOARDS}


def main() -> None:
    DASHBOARD_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in files().items():
        path.write_text(text)
        sys.stdout.write(f"wrote {path.relative_to(REPO_ROOT)}\n")


if __name__ == "__main__":
    main()
