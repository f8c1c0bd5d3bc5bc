"""Wake waiting status requests when an order changes (PostgreSQL LISTEN/NOTIFY).

Migration 0002 makes every insert of an order and every move of its state
``NOTIFY order_changed, '<order id> <state>'``. Each API process keeps one connection
listening on that channel and sets the events of the requests waiting for that order.

The connection is kept by a task of its own, never by the requests: a wait never
waits for a connect, and reconnects do not queue behind each other. The keeper proves
the connection every ``KEEPALIVE_SECONDS`` by notifying itself and hearing it back, so
a connection that died silently (a hung server, a dropped network path) is found and
replaced within seconds. Whenever it is not known to be listening, ``listening`` is
False and waiters re-read the order every ``RECHECK_SECONDS`` themselves, and every
waiter is woken when a connection is lost or (re)made, so no change is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from itertools import count

import asyncpg
from prometheus_client import Counter, Gauge

from orderflow.log import get_logger

CHANNEL = "order_changed"
# Re-read the stored order at least this often while nothing proves the listener works.
RECHECK_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 2.0
# A keepalive every 5 s, each given 2 s to come back: a dead listener is replaced
# within ~7 s, while waiters already fall back to re-reading from the first miss.
KEEPALIVE_SECONDS = 5.0
KEEPALIVE_TIMEOUT_SECONDS = 2.0
RECONNECT_SECONDS = 1.0
# A keepalive's payload: no order id starts with "~" (ORDER_ID_PATTERN).
KEEPALIVE_PREFIX = "~alive"

log = get_logger(__name__)

LISTENER_UP = Gauge(
    "orderflow_api_order_listener_up",
    "1 while this API process's LISTEN connection is proven to work (keepalive heard).",
)
LISTENER_LOST = Counter(
    "orderflow_api_order_listener_lost",
    "LISTEN connections lost or found dead (waits re-read the database meanwhile).",
)
WAITS = Gauge("orderflow_api_status_waits", "Status requests waiting for a change now.")


class TooManyWaits(Exception):
    """The process holds as many waiting requests as it may."""


class _Waiter(asyncio.Event):
    def __init__(self, wanted: Callable[[str], bool]) -> None:
        super().__init__()
        self.wanted = wanted


class OrderChanges:
    def __init__(self, dsn: str, max_waits: int = 1000) -> None:
        self._dsn = dsn
        self._max_waits = max_waits
        self._waits = 0
        self._waiters: dict[str, set[_Waiter]] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._proven = False
        self._lost = asyncio.Event()
        self._echo = asyncio.Event()
        self._token = f"{KEEPALIVE_PREFIX} {os.getpid()}-{id(self)}"
        self._seq = count(1)
        self._expected = ""

    @property
    def listening(self) -> bool:
        """Whether a notification for any change would reach the waiters now."""
        return self._proven and self._conn is not None and not self._conn.is_closed()

    @asynccontextmanager
    async def watching(
        self, order_id: str, wanted: Callable[[str], bool] = lambda _state: True
    ) -> AsyncIterator[asyncio.Event]:
        """An event set whenever ``order_id`` moves to a state ``wanted`` accepts.

        Register before reading the order, then clear, read, and wait: a change that
        commits between the read and the wait still sets the event. Raises
        ``TooManyWaits`` past the process's limit.
        """
        if self._waits >= self._max_waits:
            raise TooManyWaits
        changed = _Waiter(wanted)
        self._waiters.setdefault(order_id, set()).add(changed)
        self._waits += 1
        WAITS.inc()
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep())
        try:
            yield changed
        finally:
            self._waits -= 1
            WAITS.dec()
            waiters = self._waiters.get(order_id)
            if waiters is not None:
                waiters.discard(changed)
                if not waiters:
                    del self._waiters[order_id]

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None

    async def _keep(self) -> None:
        """Listen for as long as the process runs, proving and replacing the connection."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_SECONDS)
                await asyncio.wait_for(
                    conn.add_listener(CHANNEL, self._notified), CONNECT_TIMEOUT_SECONDS
                )
                self._lost.clear()
                conn.add_termination_listener(lambda _conn: self._lost.set())
                self._conn = conn
                await self._prove(conn)
                self._wake_all()  # whatever changed before it listened was not heard
                while True:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._lost.wait(), KEEPALIVE_SECONDS)
                    if self._lost.is_set():
                        raise ConnectionError("the listening connection was closed")
                    await self._prove(conn)
            except (OSError, asyncpg.PostgresError, TimeoutError, ConnectionError) as err:
                if self._proven:
                    LISTENER_LOST.inc()
                    log.warning("order change listener lost", error=type(err).__name__)
                else:
                    log.warning("order change listener unavailable", error=type(err).__name__)
            finally:
                self._conn = None
                self._set_proven(False)
                if conn is not None:
                    conn.terminate()  # never waits on a server that does not answer
            self._wake_all()  # waiters re-read now, then every RECHECK_SECONDS
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _prove(self, conn: asyncpg.Connection) -> None:
        """Notify ourselves and hear it back, or raise TimeoutError."""
        self._echo.clear()
        self._expected = f"{self._token} {next(self._seq)}"
        started = time.monotonic()
        await asyncio.wait_for(
            conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self._expected),
            KEEPALIVE_TIMEOUT_SECONDS,
        )
        left = KEEPALIVE_TIMEOUT_SECONDS - (time.monotonic() - started)
        await asyncio.wait_for(self._echo.wait(), max(left, 0.01))
        self._set_proven(True)

    def _set_proven(self, proven: bool) -> None:
        self._proven = proven
        LISTENER_UP.set(1 if proven else 0)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        text = str(payload)
        if text.startswith(KEEPALIVE_PREFIX):
            if text == self._expected:
                self._echo.set()
            return
        order_id, _, state = text.partition(" ")
        for changed in self._waiters.get(order_id, ()):
            if not state or changed.wanted(state):
                changed.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for changed in waiters:
                changed.set()
