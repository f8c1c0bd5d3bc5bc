"""Order endpoints: start, approve / cancel / update-address, status, events.

Thin by design: they validate input, talk to Temporal, and read PostgreSQL.
Every state change happens in the workflow; nothing here writes to the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from functions import auth, metrics
from functions.admission import AdmissionDep
from functions.deps import Resources, ResourcesDep, SettingsDep
from functions.errors import documented, unavailable
from functions.order_changes import RECHECK_SECONDS, TooManyWaits
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
    Step,
    Strict,
    UpdateAccepted,
)

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
# A query is answered between workflow tasks; while the order runs a step's attempt
# loop (local activities, up to a few seconds under load) it waits. Past this the API
# answers from what it knows without the worker: the stored order, or Temporal's own
# record that the workflow runs.
QUERY_TIMEOUT = timedelta(milliseconds=300)
# The longest a status request may wait for a change: well inside the idle timeouts
# of load balancers (60 s) and API Gateway's 29 s limit in front of Lambda.
WAIT_MAX_SECONDS = 20.0
# A waiting request notices its client has gone within this long, and lets go.
DISCONNECT_CHECK = 0.5
# A status read that gets no connection or no answer in this long fails (503, or the
# workflow answers): a hung database must not hold requests or starve the pool.
READ_TIMEOUT_SECONDS = 1.0


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
    # Temporal remembers a closed workflow only for its namespace's retention; the
    # database remembers the order for good. An id it knows is taken, however old, and
    # an id it cannot check now is not started.
    if await _stored(res, order_id) is not None:
        raise HTTPException(409, f"order {order_id} already exists")
    order = OrderInput(
        order_id=order_id,
        payment_id=body.payment_id,
        address=body.address,
        items=body.items,
        review_timeout_seconds=settings.review_timeout_seconds,
        shipping_max_attempts=settings.shipping_max_attempts,
        shipping_task_queue=settings.shipping_task_queue,
        step_mode=settings.step_mode,
    )
    client = await _temporal(res)
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
    metrics.ORDERS_STARTED.inc()
    admission.started(order_id)
    return Started(order_id=order_id, workflow_id=handle.id, run_id=handle.result_run_id or "")


@router.post(
    "/{order_id}/signals/approve",
    status_code=202,
    response_model=UpdateAccepted,
    responses=documented(409),
    dependencies=[auth.WRITE],
)
async def approve(order_id: OrderIdPath, res: ResourcesDep) -> UpdateAccepted:
    return await _counted("approve", _send_approve(res, order_id))


async def _send_approve(res: Resources, order_id: str) -> UpdateAccepted:
    # A signal (see OrderWorkflow.approve): recorded by Temporal at once, whatever the
    # order worker is doing; the database tells whether the order has already ended.
    stored = await _stored(res, order_id)
    if stored is not None and stored.state.terminal:
        raise HTTPException(409, f"the order is already {stored.state.value}")
    client = await _temporal(res)
    try:
        await client.get_workflow_handle(workflow_id(order_id)).signal("approve")
    except RPCError as err:
        raise await _not_running(res, order_id, err) from err
    return UpdateAccepted(order_id=order_id, accepted="approve")


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
    return await _update(
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
    return await _update(res, settings.update_timeout_seconds, order_id, "update_address", body)


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
    # The stored order answers by default: one indexed read, no work for Temporal or
    # the worker, so pollers cost next to nothing. It moves with every step's commit.
    try:
        if query.wait > 0:
            stored = await _wait_for_change(res, order_id, query.wait, query.changed_from, request)
        else:
            stored = await _read_order(res, order_id)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        # The database is down: the workflow still knows, if it answers.
        stored, live, database_answered = None, True, False
    if stored is not None and (stored.state.terminal or not live):
        # The common case, serialised once: FastAPI would validate the model again.
        return Response(_from_database(stored).model_dump_json(), media_type="application/json")
    client = await _temporal(res)
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id(order_id))
    if live:
        try:
            answer: OrderStatus = await handle.query(
                "status", result_type=OrderStatus, rpc_timeout=QUERY_TIMEOUT
            )
            return answer
        except (WorkflowQueryFailedError, RPCError) as err:
            if stored is not None:
                return _from_database(stored)
            if not database_answered:
                # Neither can say: Temporal may have forgotten an order the database
                # holds (retention), and a workflow too busy to answer (retrying a
                # step through the same outage) is not one that was just received.
                raise unavailable("the database") from err
            if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
                raise HTTPException(404, f"order {order_id} not found") from err
    # The database answered that it has no row: Temporal says whether the order is
    # starting, or ended before it stored anything.
    return await _not_stored_yet(handle, order_id)


async def _wait_for_change(
    res: Resources,
    order_id: str,
    wait: float,
    changed_from: OrderState | None,
    request: Request | None = None,
) -> store.OrderRow | None:
    """The stored order once it has ended or left ``changed_from``, or after ``wait`` s
    (at once when the process already holds as many waits as it may: a long poll may
    always answer early, and its client simply asks again)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait

    def answers(state: str) -> bool:
        """A state worth answering with: the end, or a move away from ``changed_from``."""
        return OrderState(state).terminal or (
            changed_from is not None and state != changed_from.value
        )

    changes = await res.order_changes()
    try:
        async with changes.watching(order_id, answers) as changed:
            while True:
                changed.clear()
                async with res.wait_reads:
                    stored = await _read_order(res, order_id)
                if (stored is not None and answers(stored.state.value)) or (
                    loop.time() >= deadline
                ):
                    return stored
                # Without a proven listener, re-read now and then; with one, only when
                # told (or woken because the listener was lost or came back).
                recheck = RECHECK_SECONDS if not changes.listening else wait
                if await _client_left_before(
                    changed, min(deadline, loop.time() + recheck), request
                ):
                    metrics.STATUS_WAITS_ABANDONED.inc()
                    return stored  # nobody to answer: free the wait now
    except TooManyWaits:
        metrics.STATUS_WAITS_CAPPED.inc()
        return await _read_order(res, order_id)


async def _client_left_before(
    changed: asyncio.Event, until: float, request: Request | None
) -> bool:
    """Wait for ``changed`` until the loop time ``until``; True if the client left."""
    loop = asyncio.get_running_loop()
    while not changed.is_set() and loop.time() < until:
        if request is not None and await request.is_disconnected():
            return True
        step = min(until - loop.time(), DISCONNECT_CHECK if request is not None else until)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), max(step, 0))
    return False


async def _not_stored_yet(handle: WorkflowHandle[Any, Any], order_id: str) -> OrderStatus:
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


@router.get("/{order_id}/events", response_model=OrderEvents, dependencies=[auth.READ])
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
    return await _counted(name, _send_update(res, wait_seconds, order_id, name, arg))


async def _counted(name: str, send: Awaitable[UpdateAccepted]) -> UpdateAccepted:
    """Count the customer action by its result (accepted / rejected / error status)."""
    try:
        accepted = await send
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
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    # First the verdict (the workflow's validator): accepted, or rejected (409).
    try:
        update = await handle.start_update(
            name,
            args=args,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            result_type=UpdateAccepted,
            rpc_timeout=timedelta(seconds=wait_seconds),
        )
    except WorkflowUpdateFailedError as err:
        raise _update_failed(name, err) from err
    except WorkflowUpdateRPCTimeoutOrCancelledError as err:
        raise HTTPException(
            503,
            f"the order worker did not answer within {wait_seconds:g} s; the {name} may still "
            "be applied when it does: repeat it to be sure (repeating is harmless)",
            headers={"Retry-After": "1"},
        ) from err
    except RPCError as err:
        raise await _not_running(res, order_id, err) from err
    # Then its completion: an address change counts once it is stored.
    try:
        result: UpdateAccepted = await update.result(
            rpc_timeout=timedelta(seconds=max(0.1, deadline - loop.time()))
        )
    except WorkflowUpdateFailedError as err:
        raise _update_failed(name, err) from err
    except (WorkflowUpdateRPCTimeoutOrCancelledError, RPCError):
        # Accepted, and not yet known to be applied (still being stored, or Temporal
        # did not answer the wait): the acceptance stands, and nothing uses the old value.
        return UpdateAccepted(order_id=order_id, accepted=name, applied=False)
    return result


def _update_failed(name: str, err: WorkflowUpdateFailedError) -> HTTPException:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == "Rejected":
        return HTTPException(409, cause.message)
    # Accepted, then failed while being applied: nothing changed, and no conflict.
    return HTTPException(
        503,
        f"the {name} was accepted but could not be applied; nothing changed, retry shortly",
        headers={"Retry-After": "1"},
    )


async def _not_running(res: Resources, order_id: str, err: RPCError) -> HTTPException:
    """The error to answer when Temporal refused a message for the order."""
    if err.status != RPCStatusCode.NOT_FOUND:
        return unavailable("Temporal")
    stored = await _stored(res, order_id)
    if stored is not None and stored.state.terminal:
        return HTTPException(409, f"the order is already {stored.state.value}")
    if stored is not None or await _workflow_exists(res, order_id):
        # Stored as still running, but its workflow is closed: Temporal ended it, and
        # the reconciler closes the row within seconds.
        return HTTPException(409, "the order has already ended")
    return HTTPException(404, f"order {order_id} not found")


async def _stored(res: Resources, order_id: str) -> store.OrderRow | None:
    """The stored order, or None when there is none; 503 when the database cannot say."""
    try:
        return await _read_order(res, order_id)
    except (OSError, asyncpg.PostgresError, TimeoutError) as err:
        raise unavailable("the database") from err


async def _read_order(res: Resources, order_id: str) -> store.OrderRow | None:
    """The stored order; TimeoutError when the database does not answer in time."""
    pool = await res.db()
    async with pool.acquire(timeout=READ_TIMEOUT_SECONDS) as conn:
        return await asyncio.wait_for(store.get_order(conn, order_id), READ_TIMEOUT_SECONDS)


async def _workflow_exists(res: Resources, order_id: str) -> bool:
    client = await _temporal(res)
    try:
        await client.get_workflow_handle(workflow_id(order_id)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise unavailable("Temporal") from err
    return True


# What a running order is doing, judged from the last state it stored.
STEP_AFTER_STATE = {
    OrderState.RECEIVED: Step.VALIDATE,
    OrderState.VALIDATED: Step.REVIEW,
    OrderState.AWAITING_APPROVAL: Step.REVIEW,
    OrderState.PAYMENT_CHARGED: Step.PREPARE,
    OrderState.SHIPPING: Step.DISPATCH,
}


def _from_database(row: store.OrderRow) -> OrderStatus:
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
