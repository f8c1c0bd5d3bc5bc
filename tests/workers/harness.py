"""Run the real workflows on in-process workers, on fresh task queues, with the
option to replace an activity by a same-named test double (the pattern of
temporalio/samples-python's tests)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

import asyncpg
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from orderflow.models import Address, Item, OrderInput, OrderStatus
from workers import attempts
from workers.attempts import Burst, Outcome
from workers.deadlines import DeadlineInterceptor
from workers.order.activities import OrderActivities
from workers.order.workflow import OrderWorkflow
from workers.shipping.activities import ShippingActivities
from workers.shipping.workflow import ShippingWorkflow

ADDRESS = Address(line1="1 Main St", city="Berlin", postal_code="10115", country="DE")


def _name(fn: Callable[..., Any]) -> str:
    defn = activity._Definition.from_callable(fn)
    assert defn is not None and defn.name is not None
    return defn.name


A = TypeVar("A")
R = TypeVar("R")


def step_double(name: str) -> Callable[[Callable[[A], Awaitable[R]]], Callable[..., Any]]:
    """A same-named stand-in for a step's activity, written as ONE attempt: the real
    attempt loop (workers/attempts.py) runs it, as it runs the real activity's."""

    def wrap(attempt: Callable[[A], Awaitable[R]]) -> Callable[..., Any]:
        hints = get_type_hints(attempt)
        (arg_type,) = (hint for key, hint in hints.items() if key != "return")

        async def double(burst: Burst[A]) -> Outcome[R]:
            return await attempts.run(burst, attempt)

        # The data converter decodes by these: the step's real input and result types.
        burst: Any = Burst  # parametrised at run time, which the type checker cannot follow
        outcome: Any = Outcome
        double.__annotations__ = {"burst": burst[arg_type], "return": outcome[hints["return"]]}
        return activity.defn(name=name)(double)

    return wrap


def _with(real: Sequence[Callable[..., Any]], overrides: Sequence[Callable[..., Any]]) -> list[Any]:
    replaced = {_name(fn): fn for fn in overrides}
    return [replaced.get(_name(fn), fn) for fn in real]


@dataclass
class Harness:
    client: Client
    db: asyncpg.Pool
    order_queue: str
    shipping_queue: str

    async def start(
        self,
        order_id: str | None = None,
        *,
        payment_id: str | None = None,
        items: list[Item] | None = None,
        review_timeout: float = 30,
        shipping_attempts: int = 3,
    ) -> WorkflowHandle[OrderWorkflow, Any]:
        oid = order_id or f"wf-{uuid.uuid4().hex[:12]}"
        return await self.client.start_workflow(
            OrderWorkflow.run,
            OrderInput(
                order_id=oid,
                payment_id=payment_id or f"pay-{oid}",
                address=ADDRESS,
                items=items or [Item(sku="ABC", qty=1)],
                review_timeout_seconds=review_timeout,
                shipping_max_attempts=shipping_attempts,
                shipping_task_queue=self.shipping_queue,
            ),
            id=f"order-{oid}",
            task_queue=self.order_queue,
        )


@asynccontextmanager
async def running_workers(
    client: Client,
    db: asyncpg.Pool,
    *overrides: Callable[..., Any],
    queues: tuple[str, str] | None = None,
) -> AsyncIterator[Harness]:
    """``queues`` (order, shipping) lets a second set of workers take over the first's."""
    order_queue, shipping_queue = queues or (f"orders-{uuid.uuid4()}", f"shipping-{uuid.uuid4()}")
    sa = ShippingActivities(db)
    order_acts = OrderActivities(db).all()
    ship_acts: list[Callable[..., Any]] = [sa.package_prepared, sa.carrier_dispatched]
    async with (
        Worker(
            client,
            task_queue=order_queue,
            workflows=[OrderWorkflow],
            activities=_with(order_acts, overrides),
            interceptors=[DeadlineInterceptor()],
        ),
        Worker(
            client,
            task_queue=shipping_queue,
            workflows=[ShippingWorkflow],
            activities=_with(ship_acts, overrides),
            interceptors=[DeadlineInterceptor()],
        ),
    ):
        yield Harness(client, db, order_queue, shipping_queue)


class Gate:
    """Holds a step until the test opens it. The held attempt just waits, so the
    step's deadline cuts it and the workflow tries again, as with a hung call."""

    def __init__(self) -> None:
        self._open = asyncio.Event()

    def open(self) -> None:
        self._open.set()

    async def passed(self) -> None:
        await self._open.wait()


async def wait_for_status(
    handle: WorkflowHandle[Any, Any],
    predicate: Callable[[OrderStatus], bool],
    within: float = 20,
) -> OrderStatus:
    deadline = time.monotonic() + within
    last: OrderStatus | None = None
    while time.monotonic() < deadline:
        try:
            last = await handle.query(OrderWorkflow.status)
        except Exception:  # a query may race a local activity; just ask again
            last = None
        if last is not None and predicate(last):
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"status never matched; last seen: {last}")
