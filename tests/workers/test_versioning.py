"""Worker Versioning, the design of workers/versioning.py on the real dev server: orders
started on version A finish on A although B, with a deliberately incompatible
OrderWorkflow, became current meanwhile; new orders run on B; no workflow task
fails (no non-determinism); A is stopped once nothing runs on it any more.

The workers are built the way the worker processes build them (workers/process.py's
build_worker, from Settings with WORKER_VERSIONING on), the shipping worker versioned
too: every order's shipping run is pinned to the shipping deployment's current version."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import VersioningBehavior
from temporalio.service import RPCError
from temporalio.worker import Worker

from orderflow.models import Address, Item, OrderInput, OrderState
from orderflow.settings import Settings
from tests.workers.harness import wait_for_status
from tests.workers.incompatible_order_workflow import IncompatibleOrderWorkflow
from workers import process
from workers.deadlines import DeadlineInterceptor
from workers.order import worker as order_process
from workers.order.activities import OrderActivities
from workers.order.workflow import OrderWorkflow
from workers.shipping import worker as shipping_process
from workers.versioning import deployment_config, deployment_name

pytestmark = [pytest.mark.usefixtures("flaky_off"), pytest.mark.timeout(180)]

ORDERS_ON_A = 3


@asynccontextmanager
async def order_worker(
    client: Client,
    db: asyncpg.Pool,
    queue: str,
    prefix: str,
    build: str,
    workflows: Sequence[type],
    behaviour: VersioningBehavior | None = None,
) -> AsyncIterator[Worker]:
    async with Worker(
        client,
        task_queue=queue,
        workflows=workflows,
        activities=OrderActivities(db).all(),
        interceptors=[DeadlineInterceptor()],
        deployment_config=deployment_config(prefix, "order-worker", build, behaviour),
    ) as worker:
        yield worker


def versioned(prefix: str, build: str, queue: str, shipping_queue: str) -> Settings:
    """A worker process's settings with versioning on (sandboxed, as the workflow tests run)."""
    return Settings(
        worker_versioning=True,
        worker_deployment_prefix=prefix,
        worker_build_id=build,
        order_task_queue=queue,
        shipping_task_queue=shipping_queue,
        worker_workflow_sandbox=True,
    )


async def make_current(client: Client, prefix: str, build: str, kind: str = "order-worker") -> None:
    """What the worker controller does once the version polls."""
    for _ in range(100):
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace,
                    deployment_name=deployment_name(prefix, kind),
                    build_id=build,
                    identity="test",
                )
            )
            return
        except RPCError:  # the version is not registered until its worker has polled
            await asyncio.sleep(0.2)
    raise AssertionError(f"{build} never became current")


async def pinned_build(handle: WorkflowHandle[Any, Any]) -> tuple[int, str]:
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    return info.behavior, info.deployment_version.build_id


async def pinned_version(handle: WorkflowHandle[Any, Any]) -> tuple[int, str, str]:
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    version = info.deployment_version
    return info.behavior, version.deployment_name, version.build_id


async def running_on(client: Client, prefix: str, build: str) -> int:
    name = deployment_name(prefix, "order-worker")
    counted = await client.count_workflows(
        f"TemporalWorkerDeploymentVersion='{name}:{build}' AND ExecutionStatus='Running'"
    )
    return counted.count


async def first_on(
    client: Client, queue: str, shipping_queue: str, build: str
) -> tuple[WorkflowHandle[Any, Any], list[WorkflowHandle[Any, Any]]]:
    """New orders until one runs on ``build``: the new current version reaches the task
    queue's partitions a moment after it was set. Returns it, and those that still
    went to the version before."""
    before: list[WorkflowHandle[Any, Any]] = []
    for _ in range(50):
        handle = await start(client, queue, shipping_queue)
        for _ in range(100):
            _, on = await pinned_build(handle)
            if on:
                break
            await asyncio.sleep(0.05)
        if on == build:
            return handle, before
        before.append(handle)
    raise AssertionError(f"no new order ran on {build}")


async def start(client: Client, queue: str, shipping_queue: str) -> WorkflowHandle[Any, Any]:
    oid = f"ver-{uuid.uuid4().hex[:10]}"
    return await client.start_workflow(
        OrderWorkflow.run,
        OrderInput(
            order_id=oid,
            payment_id=f"pay-{oid}",
            address=Address(line1="1 Main St", city="Berlin", postal_code="10115", country="DE"),
            items=[Item(sku="ABC", qty=1)],
            review_timeout_seconds=120,
            shipping_max_attempts=3,
            shipping_task_queue=shipping_queue,
        ),
        id=f"order-{oid}",
        task_queue=queue,
    )


async def test_orders_finish_on_their_version_while_new_ones_run_on_the_next(
    temporal_client: Client, db: asyncpg.Pool
) -> None:
    client = temporal_client
    prefix = f"orderflow-{uuid.uuid4().hex[:8]}"
    queue, shipping_queue = f"orders-{uuid.uuid4()}", f"shipping-{uuid.uuid4()}"
    on_a_settings = versioned(prefix, "A", queue, shipping_queue)
    on_b_settings = versioned(prefix, "B", queue, shipping_queue)
    async with (
        shipping_process.make_worker(client, versioned(prefix, "S1", queue, shipping_queue), db),
        order_process.make_worker(client, on_a_settings, db),
    ):
        await make_current(client, prefix, "S1", "shipping-worker")
        await make_current(client, prefix, "A")
        on_a = [await start(client, queue, shipping_queue) for _ in range(ORDERS_ON_A)]
        for handle in on_a:
            await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)

        version_b = process.build_worker(  # B: the real build path, incompatible code
            client,
            on_b_settings,
            queue,
            workflows=[IncompatibleOrderWorkflow],
            activities=OrderActivities(db).all(),
            kind="order-worker",
        )
        async with version_b:
            await make_current(client, prefix, "B")
            on_b, still_to_a = await first_on(client, queue, shipping_queue, "B")
            on_a += still_to_a
            for handle in on_a:
                await handle.signal(OrderWorkflow.approve)
            await on_b.signal(OrderWorkflow.approve)
            results = await asyncio.wait_for(
                asyncio.gather(*(h.result() for h in [*on_a, on_b])), timeout=60
            )
            assert {r.state for r in results} == {OrderState.COMPLETED}
            # A drained: nothing runs on it any more, so its worker can go.
            assert await running_on(client, prefix, "A") == 0
        # (A's worker stops here, after B's; order does not matter once drained.)

    for handle in on_a:
        assert await pinned_build(handle) == (1, "A")  # PINNED to A, finished there
    assert await pinned_build(on_b) == (1, "B")
    for handle in [*on_a, on_b]:
        history = await handle.fetch_history()
        failed = [
            e
            for e in history.events
            if e.event_type
            in (
                EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
                EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
            )
        ]
        assert failed == [], f"{handle.id}: {failed}"
    # B's order really ran B's code: its history starts with B's timer.
    b_history = await on_b.fetch_history()
    assert any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in b_history.events[:8])
    # Every shipping run, a child on the shipping deployment's queue, ran on that
    # deployment's current version (not its parent's), PINNED there.
    shipping = deployment_name(prefix, "shipping-worker")
    for handle in [*on_a, on_b]:
        child = client.get_workflow_handle(f"shipping-{handle.id.removeprefix('order-')}-run1")
        assert await pinned_version(child) == (1, shipping, "S1")


async def test_without_pinning_the_incompatible_version_breaks_running_orders(
    temporal_client: Client, db: asyncpg.Pool
) -> None:
    """The control: the same upgrade with AUTO_UPGRADE moves the running order to B at
    its next task, where B's code cannot replay it. This is what PINNED prevents (and
    what an unversioned rollout does to every order in flight)."""
    client = temporal_client
    prefix = f"orderflow-{uuid.uuid4().hex[:8]}"
    queue, shipping_queue = f"orders-{uuid.uuid4()}", f"shipping-{uuid.uuid4()}"
    auto = VersioningBehavior.AUTO_UPGRADE
    async with order_worker(client, db, queue, prefix, "A", [OrderWorkflow], auto):
        await make_current(client, prefix, "A")
        handle = await start(client, queue, shipping_queue)
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
        async with order_worker(client, db, queue, prefix, "B", [IncompatibleOrderWorkflow], auto):
            await make_current(client, prefix, "B")
            probe, before = await first_on(client, queue, shipping_queue, "B")
            await handle.signal(OrderWorkflow.approve)
            try:
                for _ in range(100):
                    events = (await handle.fetch_history()).events
                    if any(
                        e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED for e in events
                    ):
                        break
                    await asyncio.sleep(0.1)
                else:
                    desc = (await handle.describe()).raw_description
                    raise AssertionError(
                        "the order was not broken: the control proves nothing; "
                        f"{desc.workflow_execution_info.status} "
                        f"{desc.workflow_execution_info.versioning_info} "
                        f"{[e.event_type for e in events]}"
                    )
            finally:
                await handle.terminate("control: left broken on purpose")
                for other in [probe, *before]:
                    await other.terminate("control")
    failure = next(
        e.workflow_task_failed_event_attributes.failure.message
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    )
    assert "Nondeterminism" in failure or "nondeterminism" in failure.lower(), failure
