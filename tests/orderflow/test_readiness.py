"""`make run`'s start-up wait (orderflow/devstack/readiness.py) against a real worker
HTTP server: a component that takes work but cannot reach its dependencies is not
ready for the next one to start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from temporalio.client import Client

from orderflow.devstack import readiness
from orderflow.devstack.launcher import free_port
from workers.health import WorkerHealth


async def serve(endpoint: WorkerHealth) -> AsyncIterator[str]:
    port = free_port()
    server = endpoint.server("127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    await readiness.wait_for("the test server", readiness.http_ok(f"{url}/healthz"), 10)
    try:
        yield url
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def unreachable_worker() -> AsyncIterator[str]:
    client = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    pool = await asyncpg.create_pool(f"postgresql://x@127.0.0.1:{free_port()}/x", min_size=0)
    assert pool is not None
    endpoint = WorkerHealth(client, pool)
    endpoint.probes.serving()
    async for url in serve(endpoint):
        yield url
    await pool.close()


@pytest.fixture
async def connected_worker(temporal_client: Client, db: asyncpg.Pool) -> AsyncIterator[str]:
    endpoint = WorkerHealth(temporal_client, db)
    endpoint.probes.serving()
    async for url in serve(endpoint):
        yield url


async def test_ready_but_unconnected_is_not_ready_for_the_stack(unreachable_worker: str) -> None:
    with pytest.raises(readiness.NotReady, match="/dependencies"):
        await readiness.wait_for(
            "worker", readiness.serving_and_connected(unreachable_worker), within=1
        )
    # Its readiness alone would have let the stack go on.
    await readiness.http_ok(f"{unreachable_worker}/readyz")()


async def test_ready_and_connected_is(connected_worker: str) -> None:
    await readiness.wait_for("worker", readiness.serving_and_connected(connected_worker), 5)
