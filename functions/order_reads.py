"""Reading an order: the stored row, Temporal's record of its workflow, and the
status composed from them. Reads only: every state change happens in the workflow."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
from fastapi import HTTPException
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from functions.deps import Resources
from functions.errors import unavailable
from orderflow import store
from orderflow.models import Address, OrderState, OrderStatus, Step

# A query is answered between workflow tasks; while the order runs a step's attempt
# loop (local activities, up to a few seconds under load) it waits. Past this the API
# answers from what it knows without the worker: the stored order, or Temporal's own
# record that the workflow runs.
QUERY_TIMEOUT = timedelta(milliseconds=300)
# A status read that gets no connection or no answer in this long fails (503, or the
# workflow answers): a hung database must not hold requests or starve the pool.
READ_TIMEOUT_SECONDS = 1.0


def workflow_id(order_id: str) -> str:
    return f"order-{order_id}"


async def temporal(res: Resources) -> Client:
    try:
        return await res.temporal()
    except RuntimeError as err:  # connection refused / unreachable at connect time
        raise unavailable("Temporal") from err


async def read_order(res: Resources, order_id: str) -> store.OrderRow | None:
    """The stored order; TimeoutError when the database does not answer in time."""
    pool = await res.db()
    async with pool.acquire(timeout=READ_TIMEOUT_SECONDS) as conn:
        return await asyncio.wait_for(store.get_order(conn, order_id), READ_TIMEOUT_SECONDS)


async def stored_order(res: Resources, order_id: str) -> store.OrderRow | None:
    """The stored order, or None when there is none; 503 when the database cannot say."""
    try:
        return await read_order(res, order_id)
    except (OSError, asyncpg.PostgresError, TimeoutError) as err:
        raise unavailable("the database") from err


async def workflow_exists(res: Resources, order_id: str) -> bool:
    client = await temporal(res)
    try:
        await client.get_workflow_handle(workflow_id(order_id)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise unavailable("Temporal") from err
    return True


async def not_stored_yet(handle: WorkflowHandle[Any, Any], order_id: str) -> OrderStatus:
    """Status of an order the database does not hold: Temporal's own record says
    whether it exists, is being received, or ended before it stored anything."""
    try:
        described = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"order {order_id} not found") from err
        raise unavailable("Temporal") from err
    status = described.status
    if status == WorkflowExecutionStatus.RUNNING:
        # Running and nothing stored: its first step is under way.
        return OrderStatus(
            order_id=order_id,
            workflow_id=workflow_id(order_id),
            state=OrderState.RECEIVED,
            step=Step.RECEIVE,
            started_at=described.start_time,
            updated_at=described.start_time,
            source="temporal",
        )
    # Every ending the workflow makes itself stores the order first: one that closed
    # without a row was ended by Temporal (terminated, timed out), which never charged.
    how = status.name.lower().replace("_", " ") if status else "closed"
    return OrderStatus(
        order_id=order_id,
        workflow_id=workflow_id(order_id),
        state=OrderState.TERMINATED,
        step=Step.DONE,
        reason=f"ended in Temporal ({how}) before the order was stored",
        started_at=described.start_time,
        updated_at=described.close_time,
        finished_at=described.close_time,
        source="temporal",
    )


# What a running order is doing, judged from the last state it stored.
STEP_AFTER_STATE = {
    OrderState.RECEIVED: Step.VALIDATE,
    OrderState.VALIDATED: Step.REVIEW,
    OrderState.AWAITING_APPROVAL: Step.REVIEW,
    OrderState.PAYMENT_CHARGED: Step.PREPARE,
    OrderState.SHIPPING: Step.DISPATCH,
}


def from_database(row: store.OrderRow) -> OrderStatus:
    step: str = STEP_AFTER_STATE.get(row.state, Step.DONE)
    if row.state == OrderState.SHIPPING and row.tracking_number:
        step = Step.MARK_SHIPPED
    # The stored order's own clock: an order is finished when its final write
    # committed (the workflow's summary is taken a step earlier).
    facts: dict[str, Any] = {
        "state": row.state,
        "step": step,
        "payment_status": row.payment_status,
        "tracking_number": row.tracking_number,
        "reason": row.reason,
        "updated_at": row.updated_at,
        "finished_at": row.updated_at if row.state.terminal else None,
        "source": "database",
    }
    if row.summary:
        return OrderStatus.model_validate(row.summary).model_copy(update=facts)
    return OrderStatus(
        order_id=row.id,
        workflow_id=workflow_id(row.id),
        address=Address.model_validate(row.address),
        payment_id=row.payment_id,
        started_at=row.created_at,
        **facts,
    )
