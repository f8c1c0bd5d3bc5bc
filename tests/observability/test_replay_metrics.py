"""The workflow metrics count each event once, however often the workflow code re-runs.

Orders get through their first steps on one set of workers, which then stop
(as in a deployment); a new set picks them up, replaying each order's history
with all the metric calls on the way, and finishes them. Queries on the closed
runs and a Replayer over every history replay them again. The SDK's
MetricBuffer collects everything the runtime records; the counts must match
what the orders themselves report.

(Workers with max_cached_workflows=0 would replay on every task, but evicting
a workflow while its local activity runs fails the task, so that setup cannot
run these orders.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence

import asyncpg
from temporalio.client import Client
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BufferedMetricUpdate,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)
from temporalio.worker import Replayer

from orderflow.models import OrderState
from tests.conftest import TEST_CONVERTER
from tests.workers.harness import running_workers, wait_for_status
from workers import metrics
from workers.order.workflow import OrderWorkflow
from workers.shipping.workflow import ShippingWorkflow

ORDERS = 4


def _total(updates: Sequence[BufferedMetricUpdate], name: str) -> Counter[str]:
    """Counter increments (histograms: records) of one metric, by its main label."""
    totals: Counter[str] = Counter()
    for update in updates:
        if update.metric.name != name:
            continue
        attrs = update.attributes
        key = str(attrs.get("state") or attrs.get("outcome") or attrs.get("run") or "")
        totals[key] += (
            int(update.value) if update.metric.kind == BUFFERED_METRIC_KIND_COUNTER else 1
        )
    return totals


def _ours(updates: Sequence[BufferedMetricUpdate]) -> list[BufferedMetricUpdate]:
    return [u for u in updates if u.metric.name.startswith("orderflow_")]


async def test_metrics_are_not_double_counted_on_replay(
    temporal_address: str, db: asyncpg.Pool
) -> None:
    buffer = MetricBuffer(1_000_000, duration_format=MetricBufferDurationFormat.SECONDS)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    client = await Client.connect(temporal_address, data_converter=TEST_CONVERTER, runtime=runtime)
    queues = (f"orders-{uuid.uuid4()}", f"shipping-{uuid.uuid4()}")
    updates: list[BufferedMetricUpdate] = []

    async with running_workers(client, db, queues=queues) as first:
        handles = [await first.start(review_timeout=120) for _ in range(ORDERS)]
        for handle in handles:
            await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
    updates.extend(buffer.retrieve_updates())
    before_takeover = sum(_total(updates, metrics.ATTEMPTS).values())
    assert before_takeover >= ORDERS * 2  # receive and validate, at least

    async with running_workers(client, db, queues=queues):
        for handle in handles:
            await handle.signal(OrderWorkflow.approve)
        results = await asyncio.gather(*(handle.result() for handle in handles))
        assert {r.state for r in results} == {OrderState.COMPLETED}
        statuses = [await handle.query(OrderWorkflow.status) for handle in handles]
    takeover = buffer.retrieve_updates()
    updates.extend(takeover)
    replays = [u for u in takeover if u.metric.name == "temporal_workflow_task_replay_latency"]
    assert len(replays) >= ORDERS, "the new workers did not replay: the test proves nothing"

    assert _total(updates, metrics.ORDERS_FINISHED) == {"completed": ORDERS}
    assert _total(updates, metrics.ORDER_LATENCY) == {"completed": ORDERS}
    assert sum(_total(updates, metrics.ORDERS_WITHIN_SLO).values()) <= ORDERS
    # Every attempt the orders report (their own steps and their shipping runs')
    # was counted exactly once, before and after the takeover.
    counted = _total(updates, metrics.ATTEMPTS)
    assert sum(counted.values()) == sum(sum(s.attempts.values()) for s in statuses)
    assert counted["success"] >= ORDERS * 6  # receive, validate, charge, prepare, dispatch, mark
    runs = _total(updates, metrics.SHIPPING_RUNS)
    assert runs["first"] == ORDERS
    assert runs["first"] + runs["retry"] == sum(s.shipping_attempt for s in statuses)

    # Replaying every history from the start records nothing of ours at all.
    replayer = Replayer(
        workflows=[OrderWorkflow, ShippingWorkflow],
        data_converter=TEST_CONVERTER,
        runtime=runtime,
    )
    for handle in handles:
        await replayer.replay_workflow(await handle.fetch_history())
    assert _ours(buffer.retrieve_updates()) == []
