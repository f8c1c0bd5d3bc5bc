"""Issue 11.1: an order id reused once Temporal forgot its first run (real Temporal and
PostgreSQL). The API refuses such ids (tests/integration/test_api.py); this is the
second line: a run started straight on Temporal must not touch the old order's rows."""

from __future__ import annotations

import asyncpg
import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowFailureError

from orderflow import store
from orderflow.models import OrderState
from tests.integration.test_api import wait_until_deleted
from tests.workers.harness import running_workers
from tests.workers.order.test_workflow import order_id_of, stored
from workers.order.workflow import OrderWorkflow


async def history(db: asyncpg.Pool, order_id: str) -> tuple[list[str], int]:
    """The order's event types, and how many shipping runs it prepared."""
    async with db.acquire() as conn:
        events = [e["type"] for e in await store.list_events(conn, order_id)]
        shipments = await conn.fetchval(
            "SELECT count(*) FROM shipments WHERE order_id = $1", order_id
        )
    return events, shipments


@pytest.mark.parametrize("payment", ["another payment_id", "the same payment_id"])
async def test_a_new_run_of_a_forgotten_order_id_writes_nothing_of_the_old_order(
    temporal_client: Client, db: asyncpg.Pool, payment: str
) -> None:
    async with running_workers(temporal_client, db) as h:
        first = await h.start()
        await first.signal(OrderWorkflow.approve)
        assert (await first.result()).state == OrderState.COMPLETED
        oid = order_id_of(first)
        before = await stored(db, oid)
        events_before, shipments_before = await history(db, oid)

        # As the namespace's retention would.
        await temporal_client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=temporal_client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=first.id),
            )
        )
        await wait_until_deleted(temporal_client, first.id)

        payment_id = f"other-{oid}" if payment == "another payment_id" else before.payment_id
        second = await h.start(oid, payment_id=payment_id)
        await second.signal(OrderWorkflow.approve)
        # It refuses the row another run created, and ends without compensating.
        with pytest.raises(WorkflowFailureError) as failed:
            await second.result()
        assert "created by another workflow run" in str(failed.value.cause), failed.value.cause

    after = await stored(db, oid)
    assert (after.state, after.payment_status, after.payment_id) == (
        OrderState.COMPLETED,
        "charged",
        before.payment_id,
    )
    assert after.tracking_number == before.tracking_number
    assert await history(db, oid) == (events_before, shipments_before)
