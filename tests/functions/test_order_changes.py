"""The listener behind status?wait: a committed change of an order wakes its waiters,
and only its own (real PostgreSQL, migration 0002's trigger)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from functions.order_changes import OrderChanges
from orderflow import store
from orderflow.devstack.launcher import free_port
from orderflow.models import OrderState
from tests.orderflow.test_store import make_order, new_id


async def test_a_stored_order_and_each_state_move_wake_its_waiter(
    postgres_dsn: str, db: asyncpg.Pool
) -> None:
    changes = OrderChanges(postgres_dsn)
    oid, other = new_id(), new_id()
    try:
        async with changes.watching(oid) as changed, changes.watching(other) as unrelated:
            await make_order(db, oid)
            await asyncio.wait_for(changed.wait(), 5)
            assert not unrelated.is_set()

            changed.clear()
            async with db.acquire() as conn:
                await store.advance_order(conn, oid, OrderState.VALIDATED, "order_validated")
            await asyncio.wait_for(changed.wait(), 5)
            assert not unrelated.is_set()
    finally:
        await changes.close()


async def test_without_a_database_watching_still_works() -> None:
    changes = OrderChanges(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    # No listener can be had: the waiter gets its event all the same and re-reads on
    # its own every RECHECK_SECONDS; the next wait tries to listen again.
    async with changes.watching("o-1") as changed:
        assert not changed.is_set()
    assert changes._waiters == {}  # nothing left behind
    await changes.close()


async def test_a_waiter_is_woken_only_by_the_states_it_waits_for(
    postgres_dsn: str, db: asyncpg.Pool
) -> None:
    changes = OrderChanges(postgres_dsn)
    oid = new_id()
    try:
        async with changes.watching(oid, lambda state: state == "COMPLETED") as ended:
            await make_order(db, oid)  # RECEIVED: not what it waits for
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ended.wait(), 0.5)
            async with db.acquire() as conn:
                await store.advance_order(conn, oid, OrderState.COMPLETED, "order_shipped")
            await asyncio.wait_for(ended.wait(), 5)
    finally:
        await changes.close()
