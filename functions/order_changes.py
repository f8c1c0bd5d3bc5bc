"""Wake waiting status requests when an order changes (PostgreSQL LISTEN/NOTIFY).

Migration 0002 makes every insert of an order and every move of its state
``NOTIFY order_changed, '<order id> <state>'``. Each API process keeps one connection
listening on that channel, opened on the first wait, and sets the events of the
requests waiting for that order. The notification only makes a waiter re-read
sooner: a waiter also re-reads every ``RECHECK_SECONDS``, so a lost listener
connection (a database restart) slows waiting answers down but never loses one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg

from orderflow.log import get_logger

CHANNEL = "order_changed"
# The fallback when no notification comes (listener down, or a change the trigger
# does not cover): re-read the stored order at least this often.
RECHECK_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 2.0

log = get_logger(__name__)


class _Waiter(asyncio.Event):
    def __init__(self, wanted: Callable[[str], bool]) -> None:
        super().__init__()
        self.wanted = wanted


class OrderChanges:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._waiters: dict[str, set[_Waiter]] = {}

    @asynccontextmanager
    async def watching(
        self, order_id: str, wanted: Callable[[str], bool] = lambda _state: True
    ) -> AsyncIterator[asyncio.Event]:
        """An event set whenever ``order_id`` moves to a state ``wanted`` accepts.

        Register before reading the order, then clear, read, and wait: a change that
        commits between the read and the wait still sets the event.
        """
        changed = _Waiter(wanted)
        self._waiters.setdefault(order_id, set()).add(changed)
        try:
            await self._listen()
            yield changed
        finally:
            waiters = self._waiters.get(order_id)
            if waiters is not None:
                waiters.discard(changed)
                if not waiters:
                    del self._waiters[order_id]

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
        self._conn = None

    async def _listen(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            return
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            try:
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_SECONDS)
                await conn.add_listener(CHANNEL, self._notified)
            except (OSError, asyncpg.PostgresError, TimeoutError) as err:
                # Waiters fall back to re-reading; the next wait tries again.
                log.warning("order change listener unavailable", error=type(err).__name__)
                return
            conn.add_termination_listener(self._lost)
            self._conn = conn

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        order_id, _, state = str(payload).partition(" ")
        for changed in self._waiters.get(order_id, ()):
            if not state or changed.wanted(state):
                changed.set()

    def _lost(self, _conn: object) -> None:
        self._conn = None
        # Whatever changed while the connection was gone was not heard: re-read now.
        for waiters in self._waiters.values():
            for changed in waiters:
                changed.set()
