"""The worker's HTTP endpoint (workers/health.py): the shared probes over the
worker's client and pool, and /metrics with the dependency gauge refreshed."""

from __future__ import annotations

import asyncpg
import httpx
from temporalio.client import Client

from orderflow import health
from orderflow.devstack.launcher import free_port
from orderflow.metrics import exposition
from workers.health import WorkerHealth


def http_for(endpoint: WorkerHealth) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=endpoint.app())
    return httpx.AsyncClient(transport=transport, base_url="http://worker")


async def test_ready_only_while_polling(temporal_client: Client, db: asyncpg.Pool) -> None:
    endpoint = WorkerHealth(temporal_client, db, metrics=None)
    async with http_for(endpoint) as http:
        before = await http.get("/readyz")
        endpoint.probes.serving()  # what workers/process.py does once the worker polls
        polling = await http.get("/readyz")
        deps = await http.get("/dependencies")
        endpoint.probes.stopping("draining")
        draining = await http.get("/readyz")
    assert (before.status_code, before.json()["reason"]) == (503, "starting")
    assert polling.status_code == 200
    assert (draining.status_code, draining.json()["reason"]) == (503, "draining")
    assert deps.json() == {"status": "ok", "dependencies": {"temporal": "ok", "database": "ok"}}


async def test_stays_ready_with_its_dependencies_down() -> None:
    client = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    pool = await asyncpg.create_pool(f"postgresql://x@127.0.0.1:{free_port()}/x", min_size=0)
    assert pool is not None

    async def render() -> bytes:  # as WorkerMetrics.render, without the SDK's part
        return exposition()

    endpoint = WorkerHealth(client, pool, metrics=render)
    endpoint.probes.serving()
    for dependency in ("temporal", "database"):  # as an earlier, healthy check left it
        health.DEPENDENCY_UP.labels(dependency=dependency).set(1)
    try:
        async with http_for(endpoint) as http:
            scraped = await http.get("/metrics")
            ready = await http.get("/readyz")
            deps = await http.get("/dependencies")
    finally:
        await pool.close()
    assert ready.status_code == 200
    assert deps.status_code == 503 and deps.json()["status"] == "degraded"
    assert scraped.status_code == 200
    # Refreshed by the scrape itself, not left from an earlier check.
    for dependency in ("temporal", "database"):
        assert f'orderflow_dependency_up{{dependency="{dependency}"}} 0.0' in scraped.text
