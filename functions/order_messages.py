"""Customer messages to a running order: approve (a signal), cancel and
update-address (updates with a validator), and what the API answers for each.

An update's answer is the workflow's own: accepted (202), rejected by its validator
(409), or, when the worker gives no verdict in time, 503 that says the change may still
be applied (docs/protocol.md says what each answer promises).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from fastapi import HTTPException
from temporalio.client import (
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from functions import metrics
from functions.deps import Resources
from functions.errors import unavailable
from functions.order_reads import stored_order, temporal, workflow_exists, workflow_id
from orderflow.models import UpdateAccepted


async def send_approve(res: Resources, order_id: str) -> UpdateAccepted:
    # A signal (see OrderWorkflow.approve): recorded by Temporal at once, whatever the
    # order worker is doing; the database tells whether the order has already ended.
    stored = await stored_order(res, order_id)
    if stored is not None and stored.state.terminal:
        raise HTTPException(409, f"the order is already {stored.state.value}")
    client = await temporal(res)
    try:
        await client.get_workflow_handle(workflow_id(order_id)).signal("approve")
    except RPCError as err:
        raise await not_running(res, order_id, err) from err
    return UpdateAccepted(order_id=order_id, accepted="approve")


async def counted(name: str, send: Awaitable[UpdateAccepted]) -> UpdateAccepted:
    """Count the customer action by its result (accepted / rejected / error status)."""
    try:
        accepted = await send
    except HTTPException as err:
        metrics.order_update(name, "rejected" if err.status_code == 409 else str(err.status_code))
        raise
    metrics.order_update(name, "accepted")
    return accepted


async def send_update(
    res: Resources, wait_seconds: float, order_id: str, name: str, arg: Any
) -> UpdateAccepted:
    client = await temporal(res)
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
        raise update_failed(name, err) from err
    except WorkflowUpdateRPCTimeoutOrCancelledError as err:
        raise HTTPException(
            503,
            f"the order worker did not answer within {wait_seconds:g} s; the {name} may still "
            "be applied when it does: repeat it to be sure (repeating is harmless)",
            headers={"Retry-After": "1"},
        ) from err
    except RPCError as err:
        raise await not_running(res, order_id, err) from err
    # Then its completion: an address change counts once it is stored.
    try:
        result: UpdateAccepted = await update.result(
            rpc_timeout=timedelta(seconds=max(0.1, deadline - loop.time()))
        )
    except WorkflowUpdateFailedError as err:
        raise update_failed(name, err) from err
    except (WorkflowUpdateRPCTimeoutOrCancelledError, RPCError):
        # Accepted, and not yet known to be applied (still being stored, or Temporal
        # did not answer the wait): the acceptance stands, and nothing uses the old value.
        return UpdateAccepted(order_id=order_id, accepted=name, applied=False)
    return result


def update_failed(name: str, err: WorkflowUpdateFailedError) -> HTTPException:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == "Rejected":
        return HTTPException(409, cause.message)
    # Accepted, then failed while being applied: nothing changed, and no conflict.
    return HTTPException(
        503,
        f"the {name} was accepted but could not be applied; nothing changed, retry shortly",
        headers={"Retry-After": "1"},
    )


async def not_running(res: Resources, order_id: str, err: RPCError) -> HTTPException:
    """The error to answer when Temporal refused a message for the order."""
    if err.status != RPCStatusCode.NOT_FOUND:
        return unavailable("Temporal")
    stored = await stored_order(res, order_id)
    if stored is not None and stored.state.terminal:
        return HTTPException(409, f"the order is already {stored.state.value}")
    if stored is not None or await workflow_exists(res, order_id):
        # Stored as still running, but its workflow is closed: Temporal ended it, and
        # the reconciler closes the row within seconds.
        return HTTPException(409, "the order has already ended")
    return HTTPException(404, f"order {order_id} not found")


async def update(
    res: Resources, wait_seconds: float, order_id: str, name: str, arg: Any
) -> UpdateAccepted:
    """Send the update ``name`` and count the answer."""
    return await counted(name, send_update(res, wait_seconds, order_id, name, arg))
