"""Order endpoints: start, approve / cancel / update-address, status, events.

Thin by design: they validate input, talk to Temporal, and read PostgreSQL. Every
state change happens in the workflow; nothing here writes to the database. The
messages' protocol is functions/order_messages.py, reading and composing status
functions/order_reads.py, the status long poll functions/long_poll.py.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import (
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from functions import auth, metrics
from functions.admission import Admission, AdmissionDep
from functions.deps import Resources, ResourcesDep, SettingsDep
from functions.errors import documented, unavailable
from functions.long_poll import wait_for_change
from functions.order_messages import counted, send_approve, update
from functions.order_reads import (
    QUERY_TIMEOUT,
    from_database,
    not_stored_yet,
    read_order,
    stored_order,
    temporal,
    workflow_exists,
    workflow_id,
)
from orderflow import store
from orderflow.models import (
    ORDER_ID_PATTERN,
    Address,
    AddressUpdate,
    CancelRequest,
    Item,
    OrderInput,
    OrderState,
    OrderStatus,
    Strict,
    UpdateAccepted,
)
from orderflow.settings import Settings

router = APIRouter(prefix="/orders", tags=["orders"], responses=documented(401, 404, 413, 422, 503))

OrderIdPath = Annotated[
    str,
    Path(
        pattern=ORDER_ID_PATTERN,
        description="1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit",
        examples=["order-1001"],
    ),
]

DEFAULT_ITEMS = [Item(sku="ABC", qty=1)]
# The longest a status request may wait for a change: well inside the idle timeouts
# of load balancers (60 s) and API Gateway's 29 s limit in front of Lambda.
WAIT_MAX_SECONDS = 20.0


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


@router.post(
    "/{order_id}/start",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Started,
    responses=documented(409),
    dependencies=[auth.WRITE],
)
async def start_order(
    order_id: OrderIdPath,
    body: StartOrder,
    res: ResourcesDep,
    settings: SettingsDep,
    admission: AdmissionDep,
) -> Started:
    await admission.admit(res)
    try:
        handle = await _start_workflow(order_id, body, res, settings, admission)
    except BaseException:
        admission.release()  # not started: its place is free again
        raise
    metrics.ORDERS_STARTED.inc()
    admission.started(order_id)
    return Started(order_id=order_id, workflow_id=handle.id, run_id=handle.result_run_id or "")


async def _start_workflow(
    order_id: str, body: StartOrder, res: Resources, settings: Settings, admission: Admission
) -> WorkflowHandle[Any, Any]:
    # Temporal remembers a closed workflow only for its namespace's retention; the
    # database remembers the order for good. An id it knows is taken, however old, and
    # an id it cannot check now is not started.
    if await stored_order(res, order_id) is not None:
        raise HTTPException(409, f"order {order_id} already exists")
    order = OrderInput(
        order_id=order_id,
        payment_id=body.payment_id,
        address=body.address,
        items=body.items,
        review_timeout_seconds=settings.review_timeout_seconds,
        shipping_max_attempts=settings.shipping_max_attempts,
        shipping_task_queue=settings.shipping_task_queue,
    )
    client = await temporal(res)
    sent = time.monotonic()
    try:
        handle = await client.start_workflow(
            "OrderWorkflow",
            order,
            id=workflow_id(order_id),
            task_queue=settings.order_task_queue,
            # One workflow per order id, ever: a retried or duplicated start is a 409.
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            # No execution or run timeout: it could cut a refund short and leave a charged
            # order that says it is still running. Steps have budgets of their own, and
            # compensation retries for as long as it takes (workers/policies.py).
        )
    except WorkflowAlreadyStartedError as err:
        raise HTTPException(409, f"order {order_id} already exists") from err
    except RPCError as err:
        raise unavailable("Temporal") from err
    finally:
        admission.observe_start(time.monotonic() - sent)
    return handle


@router.post(
    "/{order_id}/signals/approve",
    status_code=202,
    response_model=UpdateAccepted,
    responses=documented(409),
    dependencies=[auth.WRITE],
)
async def approve(order_id: OrderIdPath, res: ResourcesDep) -> UpdateAccepted:
    return await counted("approve", send_approve(res, order_id))


@router.post(
    "/{order_id}/signals/cancel",
    status_code=202,
    response_model=UpdateAccepted,
    responses=documented(409),
    dependencies=[auth.WRITE],
)
async def cancel(
    order_id: OrderIdPath,
    res: ResourcesDep,
    settings: SettingsDep,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> UpdateAccepted:
    return await update(
        res, settings.update_timeout_seconds, order_id, "cancel", body or CancelRequest()
    )


@router.post(
    "/{order_id}/signals/update-address",
    status_code=202,
    response_model=UpdateAccepted,
    responses=documented(409),
    dependencies=[auth.WRITE],
)
async def update_address(
    order_id: OrderIdPath, body: AddressUpdate, res: ResourcesDep, settings: SettingsDep
) -> UpdateAccepted:
    return await update(res, settings.update_timeout_seconds, order_id, "update_address", body)


class StatusQuery(BaseModel):
    # An unknown parameter (say `?liv=true`) is an error, not silently the default.
    model_config = ConfigDict(extra="forbid")

    live: bool = Field(
        False,
        description="ask the running workflow (current step, attempts, recent errors) "
        "instead of the stored order; slower, and it loads the order worker",
    )
    wait: float = Field(
        0,
        ge=0,
        le=WAIT_MAX_SECONDS,
        description="hold the answer up to this many seconds until the order has ended "
        "(or its state differs from `changed_from`); answers the moment it does. Cheaper "
        "and faster than polling: one request, no poll interval added to what you see",
    )
    changed_from: OrderState | None = Field(
        None,
        description="with `wait`: also answer as soon as the stored state is not this one "
        "(pass the state you last saw to follow every step)",
    )


@router.get("/{order_id}/status", response_model=OrderStatus, dependencies=[auth.READ])
async def order_status(
    order_id: OrderIdPath,
    res: ResourcesDep,
    query: Annotated[StatusQuery, Query()],
    request: Request,
) -> OrderStatus | Response:
    live = query.live
    database_answered = True
    # The row order answers by default: one indexed read, no work for Temporal or
    # the worker, so pollers cost next to nothing. It moves with every step's commit.
    try:
        if query.wait > 0:
            row = await wait_for_change(res, order_id, query.wait, query.changed_from, request)
        else:
            row = await read_order(res, order_id)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        # The database is down: the workflow still knows, if it answers.
        row, live, database_answered = None, True, False
    if row is not None and (row.state.terminal or not live):
        # The common case, serialised once: FastAPI would validate the model again.
        return Response(from_database(row).model_dump_json(), media_type="application/json")
    client = await temporal(res)
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id(order_id))
    if live:
        try:
            answer: OrderStatus = await handle.query(
                "status", result_type=OrderStatus, rpc_timeout=QUERY_TIMEOUT
            )
            return answer
        except (WorkflowQueryFailedError, RPCError) as err:
            if row is not None:
                return from_database(row)
            if not database_answered:
                # Neither can say: Temporal may have forgotten an order the database
                # holds (retention), and a workflow too busy to answer (retrying a
                # step through the same outage) is not one that was just received.
                raise unavailable("the database") from err
            if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
                raise HTTPException(404, f"order {order_id} not found") from err
    # The database answered that it has no row: Temporal says whether the order is
    # starting, or ended before it row anything.
    return await not_stored_yet(handle, order_id)


@router.get("/{order_id}/events", response_model=OrderEvents, dependencies=[auth.READ])
async def order_events(order_id: OrderIdPath, res: ResourcesDep) -> OrderEvents:
    try:
        pool = await res.db()
        async with pool.acquire() as conn:
            events = await store.list_events(conn, order_id)
    except (OSError, asyncpg.PostgresError) as err:
        raise unavailable("the database") from err
    if not events and not await workflow_exists(res, order_id):
        raise HTTPException(404, f"order {order_id} not found")
    return OrderEvents(order_id=order_id, events=[OrderEvent(**e) for e in events])
