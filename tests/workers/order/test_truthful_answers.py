"""Issue 11.3: what the order answers is what happens (real Temporal and PostgreSQL).

An accepted address change is the address the order ships to, even while it is still
being stored; the API says "accepted, being applied" rather than 503 then; only a
rejection is a 409; a failed shipping run's reason is its own.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from fastapi import HTTPException
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError

from functions import order_messages
from functions.deps import Resources
from orderflow.models import (
    AddressUpdate,
    DispatchInput,
    OrderState,
    PersistAddressInput,
    PrepareInput,
)
from orderflow.settings import Settings
from tests.workers.harness import Gate, running_workers, step_double, wait_for_status
from tests.workers.order.test_workflow import PARIS, order_id_of, shipped_city, stored
from workers.order import business as order_business
from workers.order.workflow import OrderWorkflow
from workers.shipping import business as shipping_business


def held_address(db: asyncpg.Pool, gate: Gate) -> Any:
    """An `address_updated` that stores only once the test opens the gate."""

    @step_double("address_updated")
    async def held(update: PersistAddressInput) -> bool:
        await gate.passed()
        return await order_business.address_updated(db, update)

    return held


async def test_shipping_waits_for_an_accepted_address_change_to_be_stored(
    temporal_client: Client, db: asyncpg.Pool
) -> None:
    gate = Gate()
    async with running_workers(temporal_client, db, held_address(db, gate)) as h:
        handle = await h.start()
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
        update = await handle.start_update(
            OrderWorkflow.update_address,
            AddressUpdate(address=PARIS),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        await handle.signal(OrderWorkflow.approve)
        # Charged, but not shipping while the change it accepted is being stored.
        status = await wait_for_status(handle, lambda s: s.payment_status == "charged")
        await asyncio.sleep(1)
        status = await handle.query(OrderWorkflow.status)
        assert status.step != "ship" and status.shipping_attempt == 0, status
        gate.open()
        assert (await update.result()).applied
        result = await handle.result()
    oid = order_id_of(handle)
    assert result.state == OrderState.COMPLETED
    assert await shipped_city(db, oid) == "Paris"
    assert (await stored(db, oid)).address["city"] == "Paris"


async def test_the_api_says_accepted_and_being_applied_when_storing_outlasts_its_wait(
    temporal_client: Client, temporal_address: str, postgres_dsn: str, db: asyncpg.Pool
) -> None:
    gate = Gate()
    res = Resources(Settings(temporal_address=temporal_address, database_url=postgres_dsn))
    async with running_workers(temporal_client, db, held_address(db, gate)) as h:
        handle = await h.start()
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
        oid = order_id_of(handle)
        answer = await order_messages.send_update(
            res, 0.5, oid, "update_address", AddressUpdate(address=PARIS)
        )
        # Before: 503 "try again" while the change went on to be used.
        assert answer.accepted == "update_address" and answer.applied is False
        gate.open()
        await handle.signal(OrderWorkflow.approve)
        assert (await handle.result()).state == OrderState.COMPLETED
    assert await shipped_city(db, oid) == "Paris"
    await res.close()


def test_only_a_rejection_is_a_conflict() -> None:
    def failed(cause: ApplicationError) -> WorkflowUpdateFailedError:
        return WorkflowUpdateFailedError(cause)

    rejected = order_messages.update_failed(
        "cancel", failed(ApplicationError("too late", type="Rejected"))
    )
    assert rejected.status_code == 409 and rejected.detail == "too late"
    broken = order_messages.update_failed(
        "update_address",
        failed(ApplicationError("update_address: boom", type="StepFailed", non_retryable=True)),
    )
    assert isinstance(broken, HTTPException) and broken.status_code == 503
    assert "nothing changed" in str(broken.detail) and broken.headers == {"Retry-After": "1"}


async def test_a_failed_shipping_run_reports_its_own_reason(
    temporal_client: Client, db: asyncpg.Pool
) -> None:
    @step_double("carrier_dispatched")
    async def first_run_never_dispatches(dispatch: DispatchInput) -> str:
        raise RuntimeError("no carrier today")

    @step_double("package_prepared")
    async def second_run_breaks(prepare: PrepareInput) -> None:
        if prepare.attempt >= 2:
            raise ApplicationError("the warehouse lost it", type="Lost", non_retryable=True)
        await shipping_business.package_prepared(db, prepare)

    async with running_workers(
        temporal_client, db, first_run_never_dispatches, second_run_breaks
    ) as h:
        handle = await h.start(f"wf-{uuid.uuid4().hex[:12]}", shipping_attempts=2)
        await handle.signal(OrderWorkflow.approve)
        result = await handle.result()
    assert result.state == OrderState.FAILED
    # Run 1 signalled "no carrier today"; run 2 failed without a signal, for its own reason.
    assert result.reason is not None and "the warehouse lost it" in result.reason, result.reason
    assert "no carrier today" not in result.reason
