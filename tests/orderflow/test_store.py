"""Idempotency and monotonic state of every write, against real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from orderflow import store
from orderflow.models import OrderState

ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
ITEMS = [{"sku": "ABC", "qty": 1}]


def new_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def make_order(db: asyncpg.Pool, order_id: str, payment_id: str | None = None) -> None:
    async with db.acquire() as conn:
        await store.record_order(conn, order_id, payment_id or f"pay-{order_id}", ADDRESS, ITEMS)


async def event_types(db: asyncpg.Pool, order_id: str) -> list[str]:
    async with db.acquire() as conn:
        return [e["type"] for e in await store.list_events(conn, order_id)]


async def test_record_order_twice_is_one_order_one_event(db: asyncpg.Pool) -> None:
    oid = new_id()
    async with db.acquire() as conn:
        assert await store.record_order(conn, oid, "p", ADDRESS, ITEMS) is True
        assert await store.record_order(conn, oid, "p", ADDRESS, ITEMS) is False
        row = await store.get_order(conn, oid)
    assert row is not None and row.state == OrderState.RECEIVED
    assert await event_types(db, oid) == ["order_received"]


async def test_state_never_moves_backwards(db: asyncpg.Pool) -> None:
    oid = new_id()
    await make_order(db, oid)
    async with db.acquire() as conn:
        assert await store.advance_order(conn, oid, OrderState.SHIPPING, "e1")
        assert not await store.advance_order(conn, oid, OrderState.VALIDATED, "order_validated")
        assert await store.advance_order(conn, oid, OrderState.COMPLETED, "order_shipped")
        # Terminal states share the top rank: none can replace another.
        assert not await store.advance_order(conn, oid, OrderState.FAILED, "order_failed")
        row = await store.get_order(conn, oid)
    assert row is not None and row.state == OrderState.COMPLETED


async def test_advance_unknown_order_is_an_error(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        with pytest.raises(store.UnknownOrder):
            await store.advance_order(conn, new_id(), OrderState.VALIDATED, "order_validated")


async def test_charge_is_once_per_payment_id_even_when_racing(db: asyncpg.Pool) -> None:
    oid = new_id()
    await make_order(db, oid, "pay-race")

    async def charge() -> store.PaymentRow:
        async with db.acquire() as conn:
            return await store.charge_payment(conn, oid, f"pay-race-{oid}", 1999)

    rows = await asyncio.gather(*(charge() for _ in range(10)))
    assert {(r.payment_id, r.status, r.amount) for r in rows} == {
        (f"pay-race-{oid}", "charged", 1999)
    }
    async with db.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM payments WHERE order_id = $1", oid)
    assert count == 1
    assert (await event_types(db, oid)).count("payment_charged") == 1


async def test_payment_id_of_another_order_is_rejected(db: asyncpg.Pool) -> None:
    first, second = new_id(), new_id()
    await make_order(db, first)
    await make_order(db, second)
    async with db.acquire() as conn:
        await store.charge_payment(conn, first, f"shared-{first}", 100)
        with pytest.raises(store.PaymentIdConflict):
            await store.charge_payment(conn, second, f"shared-{first}", 100)
        # A second, different payment for the same order is refused too.
        with pytest.raises(store.PaymentIdConflict):
            await store.charge_payment(conn, first, f"other-{first}", 100)
        assert await store.get_payment(conn, second) is None


async def test_refund_is_idempotent_and_a_noop_without_charge(db: asyncpg.Pool) -> None:
    oid, uncharged = new_id(), new_id()
    await make_order(db, oid)
    await make_order(db, uncharged)
    async with db.acquire() as conn:
        await store.charge_payment(conn, oid, f"p-{oid}", 500)
        first = await store.refund_payment(conn, oid)
        again = await store.refund_payment(conn, oid)
        assert await store.refund_payment(conn, uncharged) is None
    assert first is not None and first.status == "refunded"
    assert again is not None and again.status == "refunded"
    assert (await event_types(db, oid)).count("payment_refunded") == 1


async def test_a_charge_after_the_refund_of_an_uncharged_order_takes_no_money(
    db: asyncpg.Pool,
) -> None:
    # A charge attempt cut by its timeout can still reach the database after the
    # workflow gave up on the charge and compensated: the refund must fence it.
    oid = new_id()
    await make_order(db, oid)
    async with db.acquire() as conn:
        assert await store.refund_payment(conn, oid) is None
        assert await store.refund_payment(conn, oid) is None  # still idempotent
        with pytest.raises(store.PaymentVoided):
            await store.charge_payment(conn, oid, f"p-{oid}", 500)
        payments = await conn.fetchval("SELECT count(*) FROM payments WHERE order_id = $1", oid)
        row = await store.get_order(conn, oid)
    assert payments == 0
    assert row is not None and row.state == OrderState.RECEIVED
    assert await event_types(db, oid) == ["order_received", "payment_voided"]


async def test_a_charged_order_refunded_is_not_voided(db: asyncpg.Pool) -> None:
    oid = new_id()
    await make_order(db, oid)
    async with db.acquire() as conn:
        await store.charge_payment(conn, oid, f"p-{oid}", 500)
        await store.refund_payment(conn, oid)
        # A retry of the charge that succeeded returns that charge, now refunded.
        again = await store.charge_payment(conn, oid, f"p-{oid}", 500)
    assert again.status == "refunded"
    assert "payment_voided" not in await event_types(db, oid)


async def test_dispatch_twice_keeps_the_first_tracking_number(db: asyncpg.Pool) -> None:
    oid = new_id()
    await make_order(db, oid)
    async with db.acquire() as conn:
        await store.prepare_shipment(conn, oid, 1, ADDRESS)
        await store.prepare_shipment(conn, oid, 1, ADDRESS)
        first = await store.dispatch_shipment(conn, oid, 1, ADDRESS, "TRK-1")
        second = await store.dispatch_shipment(conn, oid, 1, ADDRESS, "TRK-2")
        shipments = await conn.fetchval("SELECT count(*) FROM shipments WHERE order_id=$1", oid)
    assert first == second == "TRK-1"
    assert shipments == 1
    types = await event_types(db, oid)
    assert types.count("package_prepared") == 1 and types.count("carrier_dispatched") == 1


async def test_address_update_stops_at_a_terminal_state(db: asyncpg.Pool) -> None:
    oid = new_id()
    await make_order(db, oid)
    moved = {**ADDRESS, "city": "Paris", "country": "FR"}
    async with db.acquire() as conn:
        assert await store.update_address(conn, oid, moved, 1)
        assert await store.update_address(conn, oid, moved, 1)  # retry: same event key
        await store.advance_order(conn, oid, OrderState.CANCELLED, "order_cancelled")
        assert not await store.update_address(conn, oid, ADDRESS, 2)
        row = await store.get_order(conn, oid)
    assert row is not None and row.address["city"] == "Paris"
    assert (await event_types(db, oid)).count("address_updated") == 1


async def test_injection_shaped_id_is_just_data(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        assert await store.get_order(conn, "x'; DROP TABLE orders; --") is None
        assert await conn.fetchval("SELECT to_regclass('orders') IS NOT NULL")


async def test_refused_transition_logs_no_event(db: asyncpg.Pool) -> None:
    oid = new_id()
    await make_order(db, oid)
    async with db.acquire() as conn:
        await store.advance_order(conn, oid, OrderState.COMPLETED, "order_shipped")
        assert not await store.advance_order(conn, oid, OrderState.CANCELLED, "order_cancelled")
        # The retry of the transition that did happen still finds its event in place.
        assert not await store.advance_order(conn, oid, OrderState.COMPLETED, "order_shipped")
    assert await event_types(db, oid) == ["order_received", "order_shipped"]


async def test_an_order_is_dispatched_at_most_once_across_shipping_runs(db: asyncpg.Pool) -> None:
    oid = new_id()
    await make_order(db, oid)
    async with db.acquire() as conn:
        await store.prepare_shipment(conn, oid, 1, ADDRESS)
        first = await store.dispatch_shipment(conn, oid, 1, ADDRESS, "TRK-RUN1")
        # Run 1 gave up after that committed attempt; run 2 must not ship again.
        await store.prepare_shipment(conn, oid, 2, ADDRESS)
        second = await store.dispatch_shipment(conn, oid, 2, ADDRESS, "TRK-RUN2")
        dispatched = await conn.fetchval(
            "SELECT count(*) FROM shipments WHERE order_id=$1 AND status='dispatched'", oid
        )
    assert first == second == "TRK-RUN1"
    assert dispatched == 1
    assert (await event_types(db, oid)).count("carrier_dispatched") == 1


async def test_a_write_from_another_run_is_refused_and_changes_nothing(db: asyncpg.Pool) -> None:
    # Issue 11.1: the row keeps the run that created it; no other run may write it.
    oid = new_id()
    pay = f"pay-{oid}"
    async with db.acquire() as conn:
        assert await store.record_order(conn, oid, pay, ADDRESS, ITEMS, run_id="run-a")
        await store.charge_payment(conn, oid, pay, 100, run_id="run-a")
        other = "run-b"
        refused: list[Callable[[], Awaitable[object]]] = [
            lambda: store.record_order(conn, oid, pay, ADDRESS, ITEMS, run_id=other),
            lambda: store.charge_payment(conn, oid, pay, 100, run_id=other),
            lambda: store.refund_payment(conn, oid, run_id=other),
            lambda: store.update_address(conn, oid, {"city": "x"}, 1, run_id=other),
            lambda: store.advance_order(conn, oid, OrderState.FAILED, "failed", run_id=other),
            lambda: store.prepare_shipment(conn, oid, 1, ADDRESS, run_id=other),
            lambda: store.dispatch_shipment(conn, oid, 1, ADDRESS, "TRK-B", run_id=other),
        ]
        for write in refused:
            with pytest.raises(store.OrderOfAnotherRun):
                await write()
        row = await store.get_order(conn, oid)
        assert row is not None
        assert (row.state, row.payment_status, row.address) == (
            OrderState.PAYMENT_CHARGED,
            "charged",
            ADDRESS,
        )
        # Its own run still writes; the retry of its first write is the quiet no-op.
        assert not await store.record_order(conn, oid, pay, ADDRESS, ITEMS, run_id="run-a")
        refund = await store.refund_payment(conn, oid, run_id="run-a")
        assert refund is not None and refund.status == "refunded"


async def test_admission_counts_active_ended_and_stored_orders_in_one_read(
    db: asyncpg.Pool,
) -> None:
    active, ended, unknown = new_id(), new_id(), new_id()
    states = [OrderState.RECEIVED]
    async with db.acquire() as conn:
        # One snapshot, so that the session's other orders moving meanwhile do not count.
        snapshot = conn.transaction(isolation="repeatable_read")
        await snapshot.start()
        try:
            before = await store.admission_counts(conn, states, 60, [])
            for oid in (active, ended):
                await store.record_order(conn, oid, f"pay-{oid}", ADDRESS, ITEMS)
            await store.advance_order(conn, ended, OrderState.COMPLETED, "order_shipped")
            after = await store.admission_counts(conn, states, 60, [active, ended, unknown])
            in_no_time = await store.admission_counts(conn, states, 0, [])
        finally:
            await snapshot.rollback()
    assert after.active == before.active + 1
    assert after.ended == before.ended + 1
    assert in_no_time.ended == 0
    assert sorted(after.stored) == sorted([active, ended])


async def test_an_earlier_address_change_never_replaces_a_later_one(db: asyncpg.Pool) -> None:
    # The workflow keeps the change it accepted last; so must the row, whichever of two
    # changes in flight commits first (failed before migration 0005: the last commit won).
    oid = new_id()
    await make_order(db, oid)
    second = {**ADDRESS, "city": "Paris"}
    async with db.acquire() as conn:
        assert await store.update_address(conn, oid, second, 2)
        assert await store.update_address(conn, oid, {**ADDRESS, "city": "Rome"}, 1)
        row = await store.get_order(conn, oid)
    assert row is not None and row.address == second
    assert (await event_types(db, oid)).count("address_updated") == 1


async def test_an_address_change_for_a_missing_order_stores_nothing(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        assert not await store.update_address(conn, new_id(), ADDRESS, 1)


async def test_an_unfinished_order_from_before_runs_is_claimed_by_its_first_writer(
    db: asyncpg.Pool,
) -> None:
    oid = new_id()
    await make_order(db, oid)  # run_id None: as a row from before migration 0003
    async with db.acquire() as conn:
        await store.advance_order(conn, oid, OrderState.VALIDATED, "validated", run_id="run-a")
        with pytest.raises(store.OrderOfAnotherRun):
            await store.charge_payment(conn, oid, f"pay-{oid}", 100, run_id="run-b")
        assert await conn.fetchval("SELECT run_id FROM orders WHERE id = $1", oid) == "run-a"
