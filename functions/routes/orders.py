"""Order endpoints: start, approve / cancel / update-address, status, events.

Thin by design: they validate input, talk to Temporal, and read PostgreSQL.
Every state change happens in the workflow; nothing here writes to the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, HTTPException, Path, status
from pydantic import BaseModel, Field
from temporalio.client import (
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from functions import metrics
from functions.deps import Resources, ResourcesDep, SettingsDep
from functions.errors import unavailable
from orderflow import store
from orderflow.models import (
    ORDER_ID_PATTERN,
    Address,
    AddressUpdate,
    CancelRequest,
    Item,
    OrderInput,
    OrderStatus,
    Strict,
    UpdateAccepted,
)

router = APIRouter(prefix="/orders", tags=["orders"])

OrderIdPath = Annotated[
    str,
    Path(
        pattern=ORDER_ID_PATTERN,
        description="1-64 characters of A-Z a-z 0-9 . _ -",
        examples=["order-1001"],
    ),
]

DEFAULT_ITEMS = [Item(sku="ABC", qty=1)]
# Query answers come from the order worker; past this the stored state is shown.
QUERY_TIMEOUT = timedelta(seconds=3)


class StartOrder(Strict):
    payment_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
    address: Address
    items: list[Item] = Field(
        default_factory=lambda: list(DEFAULT_ITEMS), min_length=1, max_length=100
    )


class Started(BaseModel):
    order_id: str
    workflow_id: str
    run_id: str


class OrderEvent(BaseModel):
    id: int
    type: str
    payload: dict[str, Any]
    ts: datetime


class OrderEvents(BaseModel):
    order_id: str
    events: list[OrderEvent]


def workflow_id(order_id: str) -> str:
    return f"order-{order_id}"


@router.post(
    "/{order_id}/start",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Started,
    responses={409: {"description": "an order with this id exists already"}},
)
async def start_order(
    order_id: OrderIdPath, body: StartOrder, res: ResourcesDep, settings: SettingsDep
) -> Started:
    order = OrderInput(
        order_id=order_id,
        payment_id=body.payment_id,
        address=body.address,
        items=body.items,
        review_timeout_seconds=settings.review_timeout_seconds,
        shipping_max_attempts=settings.shipping_max_attempts,
        shipping_task_queue=settings.shipping_task_queue,
    )
    client = await _temporal(res)
    try:
        handle = await client.start_workflow(
            "OrderWorkflow",
            order,
            id=workflow_id(order_id),
            task_queue=settings.order_task_queue,
            # One workflow per order id, ever: a retried or duplicated start is a 409.
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            execution_timeout=timedelta(
                seconds=settings.review_timeout_seconds + settings.order_backstop_seconds
            ),
        )
    except WorkflowAlreadyStartedError as err:
        raise HTTPException(409, f"order {order_id} already exists") from err
    except RPCError as err:
        raise unavailable("Temporal") from err
    metrics.ORDERS_STARTED.inc()
    return Started(order_id=order_id, workflow_id=handle.id, run_id=handle.result_run_id or "")


@router.post("/{order_id}/signals/approve", status_code=202, response_model=UpdateAccepted)
async def approve(
    order_id: OrderIdPath, res: ResourcesDep, settings: SettingsDep
) -> UpdateAccepted:
    return await _update(res, settings.update_timeout_seconds, order_id, "approve", None)


@router.post("/{order_id}/signals/cancel", status_code=202, response_model=UpdateAccepted)
async def cancel(
    order_id: OrderIdPath,
    res: ResourcesDep,
    settings: SettingsDep,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> UpdateAccepted:
    return await _update(
        res, settings.update_timeout_seconds, order_id, "cancel", body or CancelRequest()
    )


@router.post("/{order_id}/signals/update-address", status_code=202, response_model=UpdateAccepted)
async def update_address(
    order_id: OrderIdPath, body: AddressUpdate, res: ResourcesDep, settings: SettingsDep
) -> UpdateAccepted:
    return await _update(res, settings.update_timeout_seconds, order_id, "update_address", body)


@router.get("/{order_id}/status", response_model=OrderStatus)
async def order_status(order_id: OrderIdPath, res: ResourcesDep) -> OrderStatus:
    stored = await _stored_order(res, order_id)
    if stored is not None and stored.state.terminal:
        return _from_database(stored)
    client = await _temporal(res)
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id(order_id))
    try:
        live: OrderStatus = await handle.query(
            "status", result_type=OrderStatus, rpc_timeout=QUERY_TIMEOUT
        )
        return live
    except WorkflowQueryFailedError as err:
        if stored is not None:
            return _from_database(stored)
        raise unavailable("the order's live status") from err
    except RPCError as err:
        if stored is not None:
            return _from_database(stored)
        if err.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"order {order_id} not found") from err
        raise unavailable("the order worker") from err


@router.get("/{order_id}/events", response_model=OrderEvents)
async def order_events(order_id: OrderIdPath, res: ResourcesDep) -> OrderEvents:
    try:
        pool = await res.db()
        async with pool.acquire() as conn:
            events = await store.list_events(conn, order_id)
    except (OSError, asyncpg.PostgresError) as err:
        raise unavailable("the database") from err
    if not events and not await _workflow_exists(res, order_id):
        raise HTTPException(404, f"order {order_id} not found")
    return OrderEvents(order_id=order_id, events=[OrderEvent(**e) for e in events])


# --- helpers ---------------------------------------------------------------------


async def _temporal(res: Resources) -> Any:
    try:
        return await res.temporal()
    except RuntimeError as err:  # connection refused / unreachable at connect time
        raise unavailable("Temporal") from err


async def _update(
    res: Resources, wait_seconds: float, order_id: str, name: str, arg: Any
) -> UpdateAccepted:
    try:
        accepted = await _send_update(res, wait_seconds, order_id, name, arg)
    except HTTPException as err:
        metrics.order_update(name, "rejected" if err.status_code == 409 else str(err.status_code))
        raise
    metrics.order_update(name, "accepted")
    return accepted


async def _send_update(
    res: Resources, wait_seconds: float, order_id: str, name: str, arg: Any
) -> UpdateAccepted:
    client = await _temporal(res)
    handle = client.get_workflow_handle(workflow_id(order_id))
    args = [] if arg is None else [arg]
    try:
        result: UpdateAccepted = await handle.execute_update(
            name, args=args, result_type=UpdateAccepted, rpc_timeout=timedelta(seconds=wait_seconds)
        )
        return result
    except WorkflowUpdateFailedError as err:
        message = str(err.cause.message) if hasattr(err.cause, "message") else str(err.cause)
        raise HTTPException(409, message) from err
    except WorkflowUpdateRPCTimeoutOrCancelledError as err:
        raise unavailable("the order worker") from err
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise unavailable("Temporal") from err
        stored = await _stored_order(res, order_id)
        if stored is not None:
            raise HTTPException(409, f"the order is already {stored.state.value}") from err
        if await _workflow_exists(res, order_id):
            raise HTTPException(409, "the order has already ended") from err
        raise HTTPException(404, f"order {order_id} not found") from err


async def _stored_order(res: Resources, order_id: str) -> store.OrderRow | None:
    """The stored order, or None when absent or when the database cannot answer now."""
    try:
        pool = await res.db()
        async with pool.acquire() as conn:
            return await store.get_order(conn, order_id)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None


async def _workflow_exists(res: Resources, order_id: str) -> bool:
    client = await _temporal(res)
    try:
        await client.get_workflow_handle(workflow_id(order_id)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise unavailable("Temporal") from err
    return True


def _from_database(row: store.OrderRow) -> OrderStatus:
    if row.summary:
        summary = OrderStatus.model_validate(row.summary)
        return summary.model_copy(update={"state": row.state, "source": "database"})
    return OrderStatus(
        order_id=row.id,
        workflow_id=workflow_id(row.id),
        state=row.state,
        step="unknown",
        address=Address.model_validate(row.address),
        payment_id=row.payment_id,
        reason=row.reason,
        started_at=row.created_at,
        updated_at=row.updated_at,
        source="database",
    )
