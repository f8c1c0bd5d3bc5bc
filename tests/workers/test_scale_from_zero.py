"""Workers at zero (KEDA minReplicaCount: 0): an order started while no order worker
polls its task queue waits in Temporal and completes once a worker is started.

Real processes with the chart's commands (`python -m functions`, `python -m
workers.order`, `python -m workers.shipping`) against the session's Temporal and
PostgreSQL, on task queues of their own. Behaviour only; `make cold-start` measures it.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.client import Client

from loadtest.cold_start import ADDRESS, ok, spawned, wait_for
from orderflow.devstack.launcher import NOT_INHERITED, free_port

TERMINAL = {"COMPLETED", "CANCELLED", "FAILED"}


@pytest.mark.timeout(180)
async def test_an_order_waits_for_a_worker_and_completes_when_one_starts(
    fresh_database: str, temporal_address: str, temporal_client: Client, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    api_port, order_port, shipping_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env.update(
        # A database of its own: admission runs as configured, on a known state.
        DATABASE_URL=fresh_database,
        TEMPORAL_ADDRESS=temporal_address,
        ORDER_TASK_QUEUE=f"zero-orders-{tag}",
        SHIPPING_TASK_QUEUE=f"zero-shipping-{tag}",
        API_PORT=str(api_port),
        ORDER_WORKER_HTTP_PORT=str(order_port),
        SHIPPING_WORKER_HTTP_PORT=str(shipping_port),
        FLAKY="off",
        LOG_FORMAT="json",
    )
    api = f"http://127.0.0.1:{api_port}"
    order_id = f"zero-{tag}"
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        with spawned("functions", env, tmp_path / "api.log") as api_proc:
            await asyncio.to_thread(wait_for, lambda: ok(httpx.get(f"{api}/readyz")), api_proc, 60)
            started = await http.post(
                f"/orders/{order_id}/start", json={"payment_id": f"pay-{tag}", "address": ADDRESS}
            )
            assert started.status_code == 202, started.text
            assert (await http.post(f"/orders/{order_id}/signals/approve")).status_code == 202

            # No worker: the first workflow task stays scheduled in the task queue, never
            # started, and the order shows Temporal's record of it.
            await asyncio.sleep(3)
            handle = temporal_client.get_workflow_handle(started.json()["workflow_id"])
            pending = (await handle.describe()).raw_description.pending_workflow_task
            assert pending.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
            waiting = (await http.get(f"/orders/{order_id}/status")).json()
            assert (waiting["state"], waiting["source"]) == ("RECEIVED", "temporal")

            with (
                spawned("workers.order", env, tmp_path / "order-worker.log"),
                spawned("workers.shipping", env, tmp_path / "shipping-worker.log"),
            ):
                state, deadline = "", time.monotonic() + 120
                while state not in TERMINAL and time.monotonic() < deadline:
                    answer = await http.get(f"/orders/{order_id}/status", params={"wait": 20})
                    state = answer.json()["state"]
            final = (await http.get(f"/orders/{order_id}/status")).json()
    assert final["state"] == "COMPLETED", final
    # The approval sent while no worker ran was kept and applied.
    assert final["approved"] is True and final["tracking_number"]
