"""The order process's own metrics, recorded from workflow code.

Through ``workflow.metric_meter()`` only: the SDK drops whatever a workflow
records while it replays history (after a cache eviction, a worker restart, a
query on an evicted run), so each event is counted once however often the code
runs again. The SDK exports them with its own metrics on the worker's /metrics
(see workers/telemetry.py), labelled with namespace, task_queue and
workflow_type besides the labels given here.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

# The objective: an order completes within 15 s of its start.
SLO_SECONDS = 15.0

ORDER_LATENCY = "orderflow_order_e2e_latency_seconds"
ORDERS_FINISHED = "orderflow_orders_finished_total"
ORDERS_WITHIN_SLO = "orderflow_orders_completed_within_slo_total"
STEP_LATENCY = "orderflow_step_duration_seconds"
ATTEMPTS = "orderflow_activity_attempts_total"
SHIPPING_RUNS = "orderflow_shipping_runs_total"
STEPS_HANDED_OVER = "orderflow_steps_handed_over_total"

# Fine steps across 0.5-15 s, where orders finish and the objective sits; a few
# coarse ones beyond it to tell "a bit late" from "stuck for minutes".
ORDER_LATENCY_BUCKETS = (
    0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30, 60, 120, 300,
)  # fmt: skip
# One attempt is cut at 150 ms; a step takes a few attempts, or minutes in an outage.
STEP_LATENCY_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 300,
)  # fmt: skip

# The SDK's latency of one local-activity call (up to 8 attempts of 150 ms, most
# calls one to three): its default buckets jump from 0.1 to 0.5 s, right across
# the deadlines that matter here.
ATTEMPT_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1, 2, 4, 8,
)  # fmt: skip

BUCKETS: dict[str, tuple[float, ...]] = {
    ORDER_LATENCY: ORDER_LATENCY_BUCKETS,
    STEP_LATENCY: STEP_LATENCY_BUCKETS,
    "temporal_local_activity_execution_latency": ATTEMPT_LATENCY_BUCKETS,
}


def _seconds(delta: timedelta) -> float:
    return max(delta.total_seconds(), 0.0)


def attempt(activity: str, outcome: str) -> None:
    """One attempt of a step's local activity: ``success``, ``error`` or ``timeout``."""
    workflow.metric_meter().create_counter(
        ATTEMPTS, "Activity attempts by activity and outcome."
    ).add(1, {"activity": activity, "outcome": outcome})


def step_finished(step: str, outcome: str, took: timedelta) -> None:
    """A step ended (``success`` or ``gave_up``), all its attempts included."""
    workflow.metric_meter().create_histogram_float(
        STEP_LATENCY, "Step latency from first attempt to success or giving up.", "s"
    ).record(_seconds(took), {"step": step, "outcome": outcome})


def order_finished(state: str) -> None:
    """The order reached a terminal state; its latency counts from the workflow's start."""
    took = _seconds(workflow.now() - workflow.info().start_time)
    outcome = state.lower()
    meter = workflow.metric_meter()
    meter.create_histogram_float(
        ORDER_LATENCY, "Order latency from start to terminal state, by outcome.", "s"
    ).record(took, {"outcome": outcome})
    meter.create_counter(ORDERS_FINISHED, "Orders that reached a terminal state.").add(
        1, {"state": outcome}
    )
    if outcome == "completed" and took <= SLO_SECONDS:
        meter.create_counter(
            ORDERS_WITHIN_SLO, f"Orders completed within {SLO_SECONDS:g} s of their start."
        ).add(1)


def shipping_run(attempt: int) -> None:
    """The order started a shipping run; every run after the first is a retry."""
    workflow.metric_meter().create_counter(
        SHIPPING_RUNS, "Shipping runs (child workflows) requested, first or retry."
    ).add(1, {"run": "first" if attempt == 1 else "retry"})


def step_handed_over(step: str) -> None:
    """A step failed more often than chance explains and went to server-side retries:
    an outage (see workers/policies.py)."""
    workflow.metric_meter().create_counter(
        STEPS_HANDED_OVER, "Steps handed to server-side retries after failing in a row."
    ).add(1, {"step": step})
