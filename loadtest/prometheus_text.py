"""What `make bench` reads from Prometheus text: the API's refused starts and the
Temporal server's own work per order.

Kept apart from the orchestration in loadtest/bench.py so the parsing can be tested
on fixed text without starting a stack.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def shed_counts(text: str) -> dict[str, float]:
    """The refused starts by reason, from the API's Prometheus text."""
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "orderflow_api_orders_shed"
        for sample in family.samples
        if sample.name == "orderflow_api_orders_shed_total"
    }


# Temporal's own work, counted from its metrics endpoint: (what, metric, service, operation).
# Counts do not depend on the host's speed, as CPU-seconds do, so they compare across days.
TEMPORAL_WORK = (
    ("workflow tasks", "service_requests", "history", "RespondWorkflowTaskCompleted"),
    ("executions started", "service_requests", "history", "StartWorkflowExecution"),
    ("signals", "service_requests", "history", "SignalWorkflowExecution"),
    ("describe calls", "service_requests", "frontend", "DescribeWorkflowExecution"),
    ("execution updates", "persistence_requests", "history", "UpdateWorkflowExecution"),
    ("persistence requests", "persistence_requests", None, None),
)


def temporal_work(text: str) -> dict[str, float]:
    """Running totals of TEMPORAL_WORK, from the Temporal server's Prometheus text."""
    totals = dict.fromkeys((what for what, *_ in TEMPORAL_WORK), 0.0)
    for family in text_string_to_metric_families(text):
        for what, metric, service, operation in TEMPORAL_WORK:
            if family.name != metric:
                continue
            for sample in family.samples:
                labels = sample.labels
                if service in (None, labels.get("service_name")) and operation in (
                    None,
                    labels.get("operation"),
                ):
                    totals[what] += sample.value
    return totals
