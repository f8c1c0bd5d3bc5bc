"""Where the API cannot tell, it answers 503 with Retry-After: never a 202 for what it
did not check, never a 404 for an order that may exist, never a state it made up.
Real Temporal and PostgreSQL (or none, for the outage)."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from fastapi.testclient import TestClient
from temporalio.client import Client, WorkflowUpdateHandle
from temporalio.service import RPCError, RPCStatusCode

from functions import order_messages
from functions.deps import Resources
from orderflow.devstack.launcher import free_port
from orderflow.models import AddressUpdate, OrderState
from orderflow.settings import Settings
from tests.functions.test_admission import client_with
from tests.orderflow.test_store import ADDRESS, new_id
from tests.workers.harness import Gate, running_workers, wait_for_status
from tests.workers.order.test_truthful_answers import held_address
from tests.workers.order.test_workflow import PARIS, order_id_of
from workers.order.workflow import OrderWorkflow


@pytest.fixture
def database_down(temporal_address: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"postgresql://orderflow:pw@127.0.0.1:{free_port()}/orderflow",
        temporal_address=temporal_address,
        db_command_timeout_seconds=1,
        shed_queue_seconds=0,
    )
    yield from client_with(settings)


async def test_with_the_database_down_a_start_is_503_and_nothing_starts(
    database_down: TestClient, temporal_client: Client
) -> None:
    # Before: the reused-id check failed open, answered 202, and status later served a
    # forgotten order's data to the new client.
    oid = new_id()
    answer = database_down.post(
        f"/orders/{oid}/start", json={"payment_id": f"pay-{oid}", "address": ADDRESS}
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    with pytest.raises(RPCError) as err:
        await temporal_client.get_workflow_handle(f"order-{oid}").describe()
    assert err.value.status == RPCStatusCode.NOT_FOUND


@pytest.mark.parametrize("message", ["approve", "cancel"])
def test_with_the_database_down_a_message_for_an_unknown_order_is_503_not_404(
    database_down: TestClient, message: str
) -> None:
    answer = database_down.post(f"/orders/{new_id()}/signals/{message}")
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"


async def test_an_order_temporal_ended_before_it_was_stored_reads_terminated(
    postgres_dsn: str, temporal_address: str, temporal_client: Client
) -> None:
    # Before: RECEIVED for 5 s from the API's memory of the start, then 503 for good.
    oid = new_id()
    settings = Settings(
        database_url=postgres_dsn,
        temporal_address=temporal_address,
        order_task_queue=f"nobody-polls-{oid}",
        shed_queue_seconds=0,
    )
    for client in client_with(settings):
        started = client.post(
            f"/orders/{oid}/start", json={"payment_id": f"pay-{oid}", "address": ADDRESS}
        )
        assert started.status_code == 202, started.text
        first = client.get(f"/orders/{oid}/status").json()
        assert (first["state"], first["source"]) == ("RECEIVED", "temporal")
        await temporal_client.get_workflow_handle(f"order-{oid}").terminate("ended by hand")
        ended = client.get(f"/orders/{oid}/status")
    assert ended.status_code == 200, ended.text
    body = ended.json()
    assert (body["state"], body["step"], body["source"]) == ("TERMINATED", "done", "temporal")
    assert "terminated" in body["reason"]


async def test_an_accepted_change_whose_result_temporal_fails_to_give_is_still_accepted(
    temporal_client: Client,
    temporal_address: str,
    postgres_dsn: str,
    db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: 503 "Temporal unavailable" for a change the workflow had accepted.
    async def unavailable(*_: object, **__: object) -> object:
        raise RPCError("connection reset", RPCStatusCode.UNAVAILABLE, b"")

    gate = Gate()
    res = Resources(Settings(temporal_address=temporal_address, database_url=postgres_dsn))
    async with running_workers(temporal_client, db, held_address(db, gate)) as h:
        handle = await h.start()
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
        with monkeypatch.context() as patched:
            patched.setattr(WorkflowUpdateHandle, "result", unavailable)
            answer = await order_messages.send_update(
                res, 2, order_id_of(handle), "update_address", AddressUpdate(address=PARIS)
            )
        assert (answer.accepted, answer.applied) == ("update_address", False)
        gate.open()
        await handle.signal(OrderWorkflow.approve)
        assert (await handle.result()).state == OrderState.COMPLETED
    await res.close()
