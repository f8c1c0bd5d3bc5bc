"""Orders whose workflow Temporal ended are closed as TERMINATED, truthfully (real
Temporal and PostgreSQL; workers/reconciler.py)."""

from __future__ import annotations

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client

from orderflow import store
from orderflow.models import OrderState, PrepareInput
from orderflow.settings import Settings
from tests.workers.harness import Gate, running_workers, step_double, wait_for_status
from tests.workers.order.test_workflow import events, order_id_of, payment, stored
from workers.order.workflow import OrderWorkflow
from workers.reconciler import AWAITING_DECISION, Reconciler


def reconciler(client: Client, db: asyncpg.Pool, quiet: float = 60) -> Reconciler:
    settings = Settings(reconcile_interval_seconds=1, reconcile_quiet_seconds=quiet)
    return Reconciler(client, db, settings)


async def sweep_until_closed(rec: Reconciler, db: asyncpg.Pool, order_id: str) -> store.OrderRow:
    # Visibility is written a moment after an execution closes: a few sweeps at most.
    for _ in range(50):
        await rec.sweep()
        row = await stored(db, order_id)
        if row.state.terminal:
            return row
    raise AssertionError(f"{order_id} was never closed: {row.state}")


async def terminated_in_review(client: Client, db: asyncpg.Pool, reason: str) -> str:
    """An order terminated in Temporal while it waited for review: its workflow id."""
    async with running_workers(client, db) as h:
        handle = await h.start()
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
        await handle.terminate(reason=reason)
    return handle.id


async def test_an_order_terminated_in_review_is_closed_terminated_with_the_reason(
    temporal_client: Client, db: asyncpg.Pool, flaky_off: None
) -> None:
    workflow_id = await terminated_in_review(temporal_client, db, "customer called: wrong order")
    oid = workflow_id.removeprefix("order-")
    row = await sweep_until_closed(reconciler(temporal_client, db), db, oid)
    assert row.state == OrderState.TERMINATED
    assert row.reason is not None and "terminated" in row.reason
    assert "customer called: wrong order" in row.reason
    assert await payment(db, oid) is None
    assert "order_terminated" in await events(db, oid)


async def test_a_charged_order_that_was_terminated_keeps_its_charge_for_a_decision(
    temporal_client: Client, db: asyncpg.Pool, flaky_off: None
) -> None:
    @step_double("package_prepared")
    async def never_prepared(prepare: PrepareInput) -> None:
        await Gate().passed()

    async with running_workers(temporal_client, db, never_prepared) as h:
        handle = await h.start()
        await handle.signal(OrderWorkflow.approve)
        await wait_for_status(handle, lambda s: s.payment_status == "charged")
        await handle.terminate(reason="stuck at the carrier")
    oid = order_id_of(handle)
    rec = reconciler(temporal_client, db)
    row = await sweep_until_closed(rec, db, oid)
    charge = await payment(db, oid)
    # Neither refunded nor silently kept: charged, flagged, and counted.
    assert row.state == OrderState.TERMINATED and charge is not None
    assert charge.status == "charged"
    assert row.reason is not None and "refund" in row.reason
    assert "payment_needs_decision" in await events(db, oid)
    assert AWAITING_DECISION._value.get() >= 1


async def test_an_order_deleted_from_temporal_is_closed_by_the_quiet_row_check(
    temporal_client: Client, db: asyncpg.Pool, flaky_off: None
) -> None:
    workflow_id = await terminated_in_review(temporal_client, db, "to be deleted")
    await temporal_client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=temporal_client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id),
        )
    )
    oid = workflow_id.removeprefix("order-")
    rec = reconciler(temporal_client, db, quiet=0.1)
    row = await sweep_until_closed(rec, db, oid)
    assert row.state == OrderState.TERMINATED


async def test_a_running_order_is_left_alone(
    temporal_client: Client, db: asyncpg.Pool, flaky_off: None
) -> None:
    async with running_workers(temporal_client, db) as h:
        handle = await h.start()
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
        rec = reconciler(temporal_client, db, quiet=0.01)
        for _ in range(3):
            await rec.sweep()
        assert (await stored(db, order_id_of(handle))).state == OrderState.AWAITING_APPROVAL
        await handle.signal(OrderWorkflow.approve)
        assert (await handle.result()).state == OrderState.COMPLETED
