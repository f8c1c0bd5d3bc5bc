"""Status with the database down answers only what it knows: a workflow that does
not answer its query (busy retrying through the same outage, or no worker) is 503
with Retry-After, not an order "just received". Real Temporal; no PostgreSQL."""

from __future__ import annotations

import uuid

from temporalio.client import Client

from orderflow.devstack.launcher import free_port
from orderflow.settings import Settings
from tests.functions.test_admission import client_with
from tests.orderflow.test_store import ADDRESS


async def test_with_the_database_down_an_unanswered_query_is_503_not_received(
    temporal_client: Client, temporal_address: str
) -> None:
    oid = f"outage-{uuid.uuid4().hex[:12]}"
    # Running, but no worker polls its queue: the live query cannot be answered.
    handle = await temporal_client.start_workflow(
        "OrderWorkflow",
        {"order_id": oid, "payment_id": f"pay-{oid}", "address": ADDRESS},
        id=f"order-{oid}",
        task_queue=f"nobody-polls-{oid}",
    )
    settings = Settings(
        database_url=f"postgresql://orderflow:hunter2-pw@127.0.0.1:{free_port()}/orderflow",
        temporal_address=temporal_address,
        db_command_timeout_seconds=1,
    )
    try:
        for client in client_with(settings):
            answer = client.get(f"/orders/{oid}/status")
    finally:
        await handle.terminate("test over")
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    assert "database" in answer.json()["message"]
