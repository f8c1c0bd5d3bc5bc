"""The drain the chart promises is the drain the workers do: each worker Deployment,
rendered with every value set the chart tests use, gives its pod longer to stop
than the SDK Worker built from that pod's environment gives its in-flight tasks
(``graceful_shutdown_timeout``), with headroom for the process's own exit (the
HTTP server, the pool, the metrics). A pod killed before its worker drained would
cut a step mid-attempt (issue 29; the drain itself: tests/faults/test_drain.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from orderflow.settings import Settings
from tests.charts.chart import RELEASE, VALUE_SETS, pod_spec, render_set
from workers.order.worker import make_worker as order_worker
from workers.policies import BUSINESS_STEP
from workers.shipping.worker import make_worker as shipping_worker

# After the Worker's drain: uvicorn's stop, the pool's close, the metrics' flush.
EXIT_HEADROOM_SECONDS = 5

WORKERS: dict[str, Callable[..., Worker]] = {
    "order-worker": order_worker,
    "shipping-worker": shipping_worker,
}


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
@pytest.mark.parametrize("component", list(WORKERS))
def test_the_pod_outlives_the_workers_drain(
    temporal_client: Client, value_set: str, component: str
) -> None:
    rendered = render_set(value_set)
    env = rendered.config_data()
    settings = Settings(
        worker_shutdown_grace_seconds=float(env["WORKER_SHUTDOWN_GRACE_SECONDS"]),
        # Built, never run; the SDK refuses two workers on one queue in a process.
        order_task_queue=f"orders-{uuid.uuid4()}",
        shipping_task_queue=f"shipping-{uuid.uuid4()}",
    )
    worker = WORKERS[component](temporal_client, settings, None)
    drain = worker.config()["graceful_shutdown_timeout"]
    assert isinstance(drain, timedelta)
    assert drain == timedelta(seconds=settings.worker_shutdown_grace_seconds)

    deployment = rendered.get("Deployment", f"{RELEASE}-{component}")
    grace = timedelta(seconds=pod_spec(deployment)["terminationGracePeriodSeconds"])
    assert grace >= drain + timedelta(seconds=EXIT_HEADROOM_SECONDS), (value_set, component)


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
@pytest.mark.parametrize("component", list(WORKERS))
def test_the_pod_outlives_a_step_held_at_every_attempt(value_set: str, component: str) -> None:
    # The SDK lets a task holding local activities finish whatever the drain says, so a
    # step failing through an outage runs its 30 local attempts first (docs/kubernetes.md).
    p = BUSINESS_STEP
    held = sum((p.timeout_for(n) for n in range(p.local_attempts)), timedelta(0))
    deployment = render_set(value_set).get("Deployment", f"{RELEASE}-{component}")
    grace = timedelta(seconds=pod_spec(deployment)["terminationGracePeriodSeconds"])
    assert grace >= held + timedelta(seconds=EXIT_HEADROOM_SECONDS), (value_set, held, grace)
