"""OrderWorkflow and ShippingWorkflow end to end on the real Temporal dev server
and real PostgreSQL. Outcomes are injected (FLAKY=off, gated or failing test
doubles) where chance would make a test flaky; the last tests keep flaky_call on.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from orderflow import store
from orderflow.models import (
    Address,
    AddressUpdate,
    CancelRequest,
    ChargeInput,
    ChargeResult,
    DispatchInput,
    Item,
    NewOrder,
    OrderState,
    PrepareInput,
)
from tests.workers.harness import Gate, running_workers, step_double, wait_for_status
from workers.order import business as order_business
from workers.order.workflow import OrderWorkflow
from workers.shipping import business as shipping_business

PARIS = Address(line1="5 Rue de Rivoli", city="Paris", postal_code="75001", country="FR")


async def events(db: asyncpg.Pool, order_id: str) -> list[str]:
    async with db.acquire() as conn:
        return [e["type"] for e in await store.list_events(conn, order_id)]


async def payment(db: asyncpg.Pool, order_id: str) -> store.PaymentRow | None:
    async with db.acquire() as conn:
        return await store.get_payment(conn, order_id)


async def stored(db: asyncpg.Pool, order_id: str) -> store.OrderRow:
    async with db.acquire() as conn:
        row = await store.get_order(conn, order_id)
    assert row is not None
    return row


async def wait_for_payment(db: asyncpg.Pool, order_id: str) -> None:
    for _ in range(200):
        if await payment(db, order_id) is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{order_id} was never charged")


async def shipped_city(db: asyncpg.Pool, order_id: str) -> str | None:
    """The city of the order's dispatched shipment, if any."""
    async with db.acquire() as conn:
        city: str | None = await conn.fetchval(
            "SELECT address_json->>'city' FROM shipments WHERE order_id=$1 AND status='dispatched'",
            order_id,
        )
        return city


def order_id_of(handle: WorkflowHandle[Any, Any]) -> str:
    return handle.id.removeprefix("order-")


def held_prepare(db: asyncpg.Pool, gate: Gate) -> Any:
    """A `package_prepared` that waits for the test to open the gate: the order sits
    in its shipping step, before dispatch, for as long as the test needs."""

    @step_double("package_prepared")
    async def held(prepare: PrepareInput) -> None:
        await gate.passed()
        await shipping_business.package_prepared(db, prepare)

    return held


def held_charge(db: asyncpg.Pool, gate: Gate) -> Any:
    """A `payment_charged` that charges, then waits for the gate: the order sits in its
    charge step, already charged and not yet shipping, for as long as the test needs."""

    @step_double("payment_charged")
    async def held(charge: ChargeInput) -> ChargeResult:
        result = await order_business.payment_charged(db, charge)
        await gate.passed()
        return result

    return held


pytestmark = pytest.mark.usefixtures("flaky_off")


async def test_happy_path(temporal_client: Client, db: asyncpg.Pool) -> None:
    async with running_workers(temporal_client, db) as h:
        handle = await h.start()
        await handle.signal(OrderWorkflow.approve)
        result = await handle.result()
        status = await handle.query(OrderWorkflow.status)
    oid = order_id_of(handle)
    assert result.state == OrderState.COMPLETED
    assert status.state == OrderState.COMPLETED and status.tracking_number
    assert status.attempts == {
        "receive_order": 1,
        "validate_order": 1,
        "charge_payment": 1,
        "prepare_package": 1,
        "dispatch_carrier": 1,
        "mark_shipped": 1,
    }
    assert (await stored(db, oid)).state == OrderState.COMPLETED
    pay = await payment(db, oid)
    assert pay is not None and pay.status == "charged" and pay.amount == 1999
    assert await events(db, oid) == [
        "order_received",
        "order_validated",
        "payment_charged",
        "package_prepared",
        "carrier_dispatched",
        "order_shipped",
    ]


async def test_approve_before_review_is_kept(temporal_client: Client, db: asyncpg.Pool) -> None:
    gate = Gate()

    @step_double("order_received")
    async def slow_receive(order: NewOrder) -> bool:
        await gate.passed()
        return await order_business.order_received(db, order)

    async with running_workers(temporal_client, db, slow_receive) as h:
        handle = await h.start()
        before = await wait_for_status(handle, lambda s: s.step == "receive_order")
        await handle.signal(OrderWorkflow.approve)
        gate.open()
        # No approval is sent after the review starts: completing proves the early one
        # was kept.
        result = await handle.result()
    assert not before.approved
    assert result.state == OrderState.COMPLETED


async def test_review_timeout_cancels_without_charge(
    temporal_client: Client, db: asyncpg.Pool
) -> None:
    async with running_workers(temporal_client, db) as h:
        handle = await h.start(review_timeout=1)
        result = await handle.result()
    oid = order_id_of(handle)
    assert (result.state, result.reason) == (OrderState.CANCELLED, "review_timeout")
    assert await payment(db, oid) is None
    row = await stored(db, oid)
    assert (row.state, row.reason) == (OrderState.CANCELLED, "review_timeout")


async def test_cancel_before_payment(temporal_client: Client, db: asyncpg.Pool) -> None:
    async with running_workers(temporal_client, db) as h:
        handle = await h.start()
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
        await handle.execute_update(OrderWorkflow.cancel, CancelRequest(reason="changed my mind"))
        result = await handle.result()
    oid = order_id_of(handle)
    assert (result.state, result.reason) == (OrderState.CANCELLED, "changed my mind")
    assert await payment(db, oid) is None
    assert "order_cancelled" in await events(db, oid)


async def test_cancel_after_payment_refunds(temporal_client: Client, db: asyncpg.Pool) -> None:
    gate = Gate()
    async with running_workers(temporal_client, db, held_charge(db, gate)) as h:
        handle = await h.start()
        await handle.signal(OrderWorkflow.approve)
        await wait_for_status(handle, lambda s: s.step == "charge_payment")
        await wait_for_payment(db, order_id_of(handle))
        await handle.execute_update(OrderWorkflow.cancel, CancelRequest())
        gate.open()
        result = await handle.result()
    oid = order_id_of(handle)
    assert result.state == OrderState.CANCELLED
    pay = await payment(db, oid)
    assert pay is not None and pay.status == "refunded"
    types = await events(db, oid)
    assert "payment_refunded" in types and "package_prepared" not in types


async def test_address_update_before_shipping_is_used(
    temporal_client: Client, db: asyncpg.Pool
) -> None:
    gate = Gate()
    async with running_workers(temporal_client, db, held_charge(db, gate)) as h:
        handle = await h.start()
        await handle.signal(OrderWorkflow.approve)
        await wait_for_status(handle, lambda s: s.step == "charge_payment")
        await handle.execute_update(OrderWorkflow.update_address, AddressUpdate(address=PARIS))
        gate.open()
        result = await handle.result()
    oid = order_id_of(handle)
    assert result.state == OrderState.COMPLETED
    assert (await stored(db, oid)).address["city"] == "Paris"
    assert await shipped_city(db, oid) == "Paris"


async def test_address_and_cancel_rejected_once_shipping_started(
    temporal_client: Client, db: asyncpg.Pool
) -> None:
    gate = Gate()
    async with running_workers(temporal_client, db, held_prepare(db, gate)) as h:
        handle = await h.start()
        await handle.signal(OrderWorkflow.approve)
        await wait_for_status(handle, lambda s: s.step == "ship")
        with pytest.raises(WorkflowUpdateFailedError) as address_err:
            await handle.execute_update(OrderWorkflow.update_address, AddressUpdate(address=PARIS))
        with pytest.raises(WorkflowUpdateFailedError) as cancel_err:
            await handle.execute_update(OrderWorkflow.cancel, CancelRequest())
        gate.open()
        result = await handle.result()
    assert "shipping has started" in str(address_err.value.cause)
    assert "shipping has started" in str(cancel_err.value.cause)
    assert result.state == OrderState.COMPLETED
    assert (await stored(db, order_id_of(handle))).address["city"] == "Berlin"


async def test_dispatch_failure_makes_the_parent_retry_shipping(
    temporal_client: Client, db: asyncpg.Pool
) -> None:
    @step_double("carrier_dispatched")
    async def first_run_fails(dispatch: DispatchInput) -> str:
        if dispatch.attempt == 1:
            raise RuntimeError("carrier rejected the parcel")
        return await shipping_business.carrier_dispatched(db, dispatch)

    async with running_workers(temporal_client, db, first_run_fails) as h:
        handle = await h.start()
        await handle.signal(OrderWorkflow.approve)
        result = await handle.result()
        status = await handle.query(OrderWorkflow.status)
    assert result.state == OrderState.COMPLETED
    assert status.shipping_attempt == 2
    assert status.attempts["dispatch_carrier"] == 12 + 1
    assert any(
        e.type == "ShippingFailed" and "carrier rejected" in e.message for e in status.errors
    )
    types = await events(db, order_id_of(handle))
    assert types.count("package_prepared") == 2 and types.count("carrier_dispatched") == 1


async def test_dispatch_failing_for_good_refunds_and_fails(
    temporal_client: Client, db: asyncpg.Pool
) -> None:
    @step_double("carrier_dispatched")
    async def always_fails(dispatch: DispatchInput) -> str:
        raise RuntimeError("no carrier serves this address")

    async with running_workers(temporal_client, db, always_fails) as h:
        handle = await h.start()
        await handle.signal(OrderWorkflow.approve)
        result = await handle.result()
    oid = order_id_of(handle)
    assert result.state == OrderState.FAILED
    assert result.reason is not None and "shipping failed after 3 attempts" in result.reason
    assert "no carrier serves this address" in result.reason
    pay = await payment(db, oid)
    assert pay is not None and pay.status == "refunded"
    row = await stored(db, oid)
    assert row.state == OrderState.FAILED and (await events(db, oid)).count("package_prepared") == 3


async def test_invalid_order_fails_without_charge(
    temporal_client: Client, db: asyncpg.Pool
) -> None:
    async with running_workers(temporal_client, db) as h:
        handle = await h.start(items=[Item(sku="ABC", qty=60), Item(sku="XYZ", qty=41)])
        result = await handle.result()
    assert result.state == OrderState.FAILED
    assert result.reason is not None and "InvalidOrder" in result.reason
    assert await payment(db, order_id_of(handle)) is None


async def test_reused_payment_id_fails_the_second_order_only(
    temporal_client: Client, db: asyncpg.Pool
) -> None:
    shared = f"shared-{uuid.uuid4().hex[:8]}"
    async with running_workers(temporal_client, db) as h:
        first = await h.start(payment_id=shared)
        await first.signal(OrderWorkflow.approve)
        assert (await first.result()).state == OrderState.COMPLETED
        second = await h.start(payment_id=shared)
        await second.signal(OrderWorkflow.approve)
        result = await second.result()
    assert result.state == OrderState.FAILED
    assert result.reason is not None and "PaymentIdConflict" in result.reason
    kept = await payment(db, order_id_of(first))
    assert kept is not None and kept.status == "charged"
    assert await payment(db, order_id_of(second)) is None


async def test_approve_after_cancel_has_no_effect(
    temporal_client: Client, db: asyncpg.Pool
) -> None:
    async with running_workers(temporal_client, db) as h:
        handle = await h.start()
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
        await handle.execute_update(OrderWorkflow.cancel, CancelRequest())
        # The server may already refuse it (workflow closed); either way it changes nothing.
        with contextlib.suppress(RPCError):
            await handle.signal(OrderWorkflow.approve)
        assert (await handle.result()).state == OrderState.CANCELLED
    assert await payment(db, order_id_of(handle)) is None
