"""The listener behind status?wait: a committed change of an order wakes its waiters,
and only its own; a listener that is lost, or dies silently, is found and replaced,
and its waiters are told at once (real PostgreSQL, migration 0002's trigger)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from functions import order_changes
from functions.order_changes import OrderChanges, TooManyWaits
from orderflow import store
from orderflow.devstack.launcher import free_port
from orderflow.models import OrderState
from tests.orderflow.test_store import make_order, new_id


async def listening(changes: OrderChanges, within: float = 10) -> None:
    for _ in range(int(within / 0.02)):
        if changes.listening:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the listener never came up")


@pytest.fixture
async def changes(postgres_dsn: str) -> AsyncIterator[OrderChanges]:
    watched = OrderChanges(postgres_dsn)
    yield watched
    await watched.close()


async def test_a_stored_order_and_each_state_move_wake_its_waiter(
    changes: OrderChanges, db: asyncpg.Pool
) -> None:
    oid, other = new_id(), new_id()
    async with changes.watching(oid) as changed, changes.watching(other) as unrelated:
        await listening(changes)
        changed.clear()
        unrelated.clear()
        await make_order(db, oid)
        await asyncio.wait_for(changed.wait(), 5)
        assert not unrelated.is_set()

        changed.clear()
        async with db.acquire() as conn:
            await store.advance_order(conn, oid, OrderState.VALIDATED, "order_validated")
        await asyncio.wait_for(changed.wait(), 5)
        assert not unrelated.is_set()


async def test_without_a_database_watching_still_works() -> None:
    changes = OrderChanges(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    # No listener can be had: the wait is not held up by it, and its waiter is told
    # to re-read on its own (listening stays False).
    async with changes.watching("o-1"):
        await asyncio.sleep(0.3)
        assert not changes.listening
    assert changes._waiters == {}  # nothing left behind
    await changes.close()


async def test_a_waiter_is_woken_only_by_the_states_it_waits_for(
    changes: OrderChanges, db: asyncpg.Pool
) -> None:
    oid = new_id()
    async with changes.watching(oid, lambda state: state == "COMPLETED") as ended:
        await listening(changes)
        ended.clear()
        await make_order(db, oid)  # RECEIVED: not what it waits for
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ended.wait(), 0.5)
        async with db.acquire() as conn:
            await store.advance_order(conn, oid, OrderState.COMPLETED, "order_shipped")
        await asyncio.wait_for(ended.wait(), 5)


async def test_a_lost_listener_wakes_its_waiters_and_comes_back(
    changes: OrderChanges, db: asyncpg.Pool
) -> None:
    # Before: nothing asserted that waits still answer promptly after the loss.
    oid = new_id()
    await make_order(db, oid)
    async with changes.watching(oid) as changed:
        await listening(changes)
        changed.clear()
        lost_before = order_changes.LISTENER_LOST._value.get()
        async with db.acquire() as conn:
            pid = changes._conn.get_server_pid() if changes._conn else 0
            await conn.execute("SELECT pg_terminate_backend($1)", pid)
        await asyncio.wait_for(changed.wait(), 2)  # told at once: re-read
        await listening(changes, within=5)  # and listening again
        assert order_changes.LISTENER_LOST._value.get() == lost_before + 1
        changed.clear()
        async with db.acquire() as conn:
            await store.advance_order(conn, oid, OrderState.VALIDATED, "order_validated")
        await asyncio.wait_for(changed.wait(), 2)


async def test_a_listener_that_went_deaf_is_found_by_its_keepalive(
    changes: OrderChanges, db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection that is up but hears nothing (here: UNLISTEN) would have degraded
    # every wait to polling for good, unnoticed.
    monkeypatch.setattr(order_changes, "KEEPALIVE_SECONDS", 0.3)
    oid = new_id()
    await make_order(db, oid)
    async with changes.watching(oid) as changed:
        await listening(changes)
        deaf = changes._conn
        assert deaf is not None
        await deaf.execute(f"UNLISTEN {order_changes.CHANNEL}")
        for _ in range(200):
            if changes._conn is not deaf and changes.listening:
                break
            await asyncio.sleep(0.05)
        assert changes._conn is not deaf and changes.listening
        changed.clear()
        async with db.acquire() as conn:
            await store.advance_order(conn, oid, OrderState.VALIDATED, "order_validated")
        await asyncio.wait_for(changed.wait(), 2)


async def test_a_listener_that_fails_to_listen_leaves_no_connection_behind(
    postgres_dsn: str, db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*_: object) -> None:
        raise asyncpg.PostgresError("LISTEN refused")

    monkeypatch.setattr(asyncpg.Connection, "add_listener", refuse)
    monkeypatch.setattr(order_changes, "RECONNECT_SECONDS", 0.05)
    count = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    async with db.acquire() as conn:
        before = await conn.fetchval(count)
    changes = OrderChanges(postgres_dsn)
    async with changes.watching(new_id()):
        await asyncio.sleep(1)  # about twenty failed attempts
        async with db.acquire() as conn:
            during = await conn.fetchval(count)
    await changes.close()
    assert during <= before + 1, (before, during)


async def test_past_the_limit_a_wait_is_refused(postgres_dsn: str) -> None:
    changes = OrderChanges(postgres_dsn, max_waits=2)
    async with changes.watching("a"), changes.watching("b"):
        with pytest.raises(TooManyWaits):
            async with changes.watching("c"):
                pass
    async with changes.watching("c"):  # room again
        pass
    await changes.close()
