"""Issue 11.2: compensation outlasts a database outage of any length, and the outage
does not grow the order's history.

Real Temporal and a real PostgreSQL of this module's own, stopped for the outage and
started again on the same data. Orders have no execution timeout any more (the API
test checks the start), so nothing can cut the refund short; what a long outage could
still do is grow the history attempt by attempt until Temporal's limits end the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle

from orderflow.db import create_pool
from orderflow.models import CancelRequest, ChargeInput, ChargeResult, OrderState, Step
from orderflow.settings import Settings
from tests.conftest import LocalPostgres
from tests.workers.harness import Gate, running_workers, step_double, wait_for_status
from tests.workers.order.test_workflow import events, order_id_of, payment, stored
from workers.order import business as order_business
from workers.order.workflow import OrderWorkflow
from workers.policies import COMPENSATION_STEP

pytestmark = pytest.mark.usefixtures("flaky_off")

# How long the outage goes on after the refund was handed to the server: long enough
# for the server to retry (1 s, then 2 s later).
OUTAGE_AFTER_HAND_OVER_SECONDS = 5
# The whole order, outage included, whatever its length: receive, validate, review, the
# held charge, at most COMPENSATION_STEP.local_attempts refund attempts in the worker,
# the handed-over refund and the close. Measured: 71 events at the hand-over, 78 at
# the end. Before the hand-over existed, every attempt past the 30th added a marker, a
# timer and a workflow task (at least 5 s apart) for as long as the outage lasted.
HISTORY_BOUND = 150


@pytest.fixture(scope="module")
def outage_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    server = LocalPostgres(tmp_path_factory.mktemp("outage-pg"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def outage_db(outage_pg: LocalPostgres) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(Settings(database_url=outage_pg.dsn, db_pool_max_size=5))
    yield pool
    pool.terminate()  # its connections may have died with the outage


def charged_then_held(db: asyncpg.Pool, gate: Gate) -> Any:
    """A `payment_charged` that charges at its first attempt, then keeps the order in
    its charge step until the gate opens, answering from memory: so the charge step
    ends while the database is down, and the refund is the first step to meet it."""
    charged: list[ChargeResult] = []

    @step_double("payment_charged")
    async def held(charge: ChargeInput) -> ChargeResult:
        if not charged:
            charged.append(await order_business.payment_charged(db, charge))
        await gate.passed()
        return charged[0]

    return held


async def history_length(handle: WorkflowHandle[Any, Any]) -> int:
    return len((await handle.fetch_history()).events)


async def server_attempt(handle: WorkflowHandle[Any, Any]) -> int:
    """The attempt the server is at on the order's pending (handed-over) activity."""
    pending = (await handle.describe()).raw_description.pending_activities
    assert len(pending) == 1, pending
    assert pending[0].activity_type.name == "refund_payment"
    return pending[0].attempt


async def test_a_refund_outlasts_a_database_outage_and_the_history_stays_bounded(
    temporal_client: Client, outage_pg: LocalPostgres, outage_db: asyncpg.Pool
) -> None:
    gate = Gate()
    async with running_workers(temporal_client, outage_db, charged_then_held(outage_db, gate)) as h:
        handle = await h.start()
        oid = order_id_of(handle)
        await handle.signal(OrderWorkflow.approve)
        for _ in range(200):  # charged: the order sits in its charge step
            if await payment(outage_db, oid) is not None:
                break
            await asyncio.sleep(0.05)
        await handle.execute_update(OrderWorkflow.cancel, CancelRequest(reason="outage drill"))

        outage_pg.stop()
        gate.open()
        # The refund fails more often than chance would make it: handed to the server.
        status = await wait_for_status(
            handle,
            lambda s: any(e.type == "HandedOver" and e.step == Step.REFUND for e in s.errors),
            within=60,
        )
        assert status.step == Step.REFUND
        assert status.state == OrderState.PAYMENT_CHARGED
        at_hand_over = await history_length(handle)

        # The outage goes on: the server keeps trying, the history does not move.
        await asyncio.sleep(OUTAGE_AFTER_HAND_OVER_SECONDS)
        attempt_during_outage = await server_attempt(handle)
        assert attempt_during_outage >= 2
        assert await history_length(handle) == at_hand_over

        outage_pg.spawn()
        await outage_pg.ready()
        result = await asyncio.wait_for(handle.result(), timeout=60)
        # Every attempt is counted: the worker's and each one the server made.
        final = await handle.query(OrderWorkflow.status)
        assert final.attempts[Step.REFUND] >= (
            COMPENSATION_STEP.local_attempts + attempt_during_outage
        )

    assert result.state == OrderState.CANCELLED
    assert (await stored(outage_db, oid)).state == OrderState.CANCELLED
    pay = await payment(outage_db, oid)
    assert pay is not None and pay.status == "refunded"
    assert (await events(outage_db, oid)).count("payment_refunded") == 1
    assert await history_length(handle) < HISTORY_BOUND
