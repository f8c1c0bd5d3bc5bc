"""The model's world: real Temporal and PostgreSQL, the real workflows on in-process
workers whose steps wait at gates, and the API's own request handlers.

Hypothesis drives state machines synchronously, and an order's life is asynchronous,
so everything here lives on one event loop in a thread of its own: the machine hands
it coroutines (``call``) and fire-and-forget requests (``send``).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from functions.deps import Resources
from orderflow.db import create_pool
from orderflow.models import (
    ChargeInput,
    ChargeResult,
    CloseInput,
    DispatchInput,
    NewOrder,
    OrderRef,
    PersistAddressInput,
    PrepareInput,
    ShippedInput,
    ValidateInput,
)
from orderflow.settings import Settings
from tests.conftest import TEST_CONVERTER
from tests.model.gates import Gates
from tests.workers.harness import step_double
from workers.deadlines import DeadlineInterceptor
from workers.order import business as order_business
from workers.order.workflow import OrderWorkflow
from workers.reconciler import Reconciler
from workers.shipping import business as shipping_business
from workers.shipping.workflow import ShippingWorkflow

T = TypeVar("T")

# Long enough for a worker to accept or reject an update while a step's call (up to
# eight held attempts) runs; an address change whose storing is held answers
# "accepted, being applied" after it.
UPDATE_WAIT_SECONDS = 2.0


def gated_steps(db: asyncpg.Pool, gates: Gates) -> tuple[list[Any], list[Any]]:
    """Same-named doubles of every step: the gate first, then the real business
    function (FLAKY off), so every write is the real one."""

    @step_double("order_received")
    async def received(order: NewOrder) -> bool:
        await gates.attempt(order.order_id, "order_received")
        return await order_business.order_received(db, order)

    @step_double("order_validated")
    async def validated(order: ValidateInput) -> None:
        await gates.attempt(order.order_id, "order_validated")
        await order_business.order_validated(db, order)

    @step_double("payment_charged")
    async def charged(charge: ChargeInput) -> ChargeResult:
        await gates.attempt(charge.order_id, "payment_charged")
        return await order_business.payment_charged(db, charge)

    @step_double("order_shipped")
    async def shipped(done: ShippedInput) -> None:
        await gates.attempt(done.order_id, "order_shipped")
        await order_business.order_shipped(db, done)

    @step_double("refund_payment")
    async def refunded(order: OrderRef) -> ChargeResult | None:
        await gates.attempt(order.order_id, "refund_payment")
        return await order_business.refund_payment(db, order)

    @step_double("address_updated")
    async def address(update: PersistAddressInput) -> bool:
        await gates.attempt(update.order_id, "address_updated", update.seq)
        return await order_business.address_updated(db, update)

    @step_double("order_closed")
    async def closed(close: CloseInput) -> None:
        await gates.attempt(close.order.order_id, "order_closed")
        await order_business.order_closed(db, close)

    @step_double("package_prepared")
    async def prepared(prepare: PrepareInput) -> None:
        await gates.attempt(prepare.order_id, "package_prepared", prepare.attempt)
        await shipping_business.package_prepared(db, prepare)

    @step_double("carrier_dispatched")
    async def dispatched(dispatch: DispatchInput) -> str:
        await gates.attempt(dispatch.order_id, "carrier_dispatched", dispatch.attempt)
        return await shipping_business.carrier_dispatched(db, dispatch)

    order = [received, validated, charged, shipped, refunded, address, closed]
    return order, [prepared, dispatched]


class ModelRuntime:
    """Workers and API resources on a background loop, for the whole test session."""

    def __init__(self, temporal_address: str, database_url: str) -> None:
        self.settings = Settings(
            temporal_address=temporal_address,
            database_url=database_url,
            update_timeout_seconds=UPDATE_WAIT_SECONDS,
            reconcile_interval_seconds=0.5,
        )
        self.order_queue = f"model-orders-{uuid.uuid4()}"
        self.shipping_queue = f"model-shipping-{uuid.uuid4()}"
        self.gates = Gates()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._workers: dict[str, tuple[Worker, asyncio.Task[None]]] = {}
        self._retiring: list[asyncio.Task[None]] = []
        self._reconciling: asyncio.Task[None]
        self.client: Client
        self.db: asyncpg.Pool
        self.api: Resources

    # --- the loop ------------------------------------------------------------------

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def send(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Start ``coro`` on the loop; its result is collected later."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def on_loop(self, fn: Callable[[], None]) -> None:
        self._loop.call_soon_threadsafe(fn)

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self.call(self._start())

    async def _start(self) -> None:
        self.client = await Client.connect(
            self.settings.temporal_address, data_converter=TEST_CONVERTER
        )
        self.db = await create_pool(self.settings)
        self.api = Resources(self.settings)
        await self._start_worker("order")
        await self._start_worker("shipping")
        # As in every order worker: orders Temporal ended are closed (sweeps often here).
        reconciler = Reconciler(self.client, self.db, self.settings)
        self._reconciling = asyncio.create_task(reconciler.run())

    def stop(self) -> None:
        async def _stop() -> None:
            self._reconciling.cancel()
            for kind in list(self._workers):
                await self._stop_worker(kind)
            await asyncio.gather(*self._retiring)
            await self.api.close()
            await self.db.close()

        try:
            self.call(_stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def restart_worker(self, kind: str) -> None:
        """Replace a worker, as a rolling deploy does: the new one starts polling, the
        old one is shut down (its attempts in flight are cut) without waiting for it."""

        async def _restart() -> None:
            old = self._workers.pop(kind)
            await self._start_worker(kind)
            self._retiring.append(asyncio.create_task(self._retire(*old)))

        self.call(_restart())

    async def _retire(self, worker: Worker, task: asyncio.Task[None]) -> None:
        await worker.shutdown()
        await task

    async def _start_worker(self, kind: str) -> None:
        order_steps, shipping_steps = gated_steps(self.db, self.gates)
        # A client of its own: one client may not run two workers on a queue, and the
        # worker it replaces may still be finishing.
        client = await Client.connect(self.settings.temporal_address, data_converter=TEST_CONVERTER)
        worker = (
            Worker(
                client,
                task_queue=self.order_queue,
                workflows=[OrderWorkflow],
                activities=order_steps,
                interceptors=[DeadlineInterceptor()],
            )
            if kind == "order"
            else Worker(
                client,
                task_queue=self.shipping_queue,
                workflows=[ShippingWorkflow],
                activities=shipping_steps,
                interceptors=[DeadlineInterceptor()],
            )
        )
        self._workers[kind] = (worker, asyncio.create_task(worker.run()))

    async def _stop_worker(self, kind: str) -> None:
        worker, task = self._workers.pop(kind)
        await worker.shutdown()
        await task


async def settle(probe: Callable[[], Awaitable[object]], quiet: float, within: float) -> None:
    """Wait until ``probe()`` has answered the same for ``quiet`` s (or ``within`` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last, since = await probe(), loop.time()
    while loop.time() < deadline and loop.time() - since < quiet:
        await asyncio.sleep(0.02)
        now = await probe()
        if now != last:
            last, since = now, loop.time()
