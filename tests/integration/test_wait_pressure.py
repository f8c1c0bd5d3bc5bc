"""500 status waits from clients that go away after 1 s (each asked to wait 20 s) do
not slow down a second client that comes after them, and PostgreSQL's connections
stay bounded by the pools (the whole stack: API process, workers, real Temporal and
PostgreSQL). Before, each abandoned wait went on re-reading the order every second
for its full 20 s."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

import asyncpg
import httpx
import pytest

from tests.conftest import API_TOKEN
from tests.integration.test_api import new_id, start, wait_state

pytestmark = pytest.mark.integration

WAITERS = 500


async def metric(http: httpx.AsyncClient, name: str) -> float:
    """The API's value of an unlabelled metric."""
    text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not exported")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def second_client(http: httpx.AsyncClient) -> tuple[list[float], list[float]]:
    """20 orders started, approved and polled: start and status latencies (s)."""
    starts: list[float] = []
    reads: list[float] = []

    async def one() -> None:
        oid = new_id()
        sent = time.monotonic()
        assert (await start(http, oid)).status_code == 202
        starts.append(time.monotonic() - sent)
        assert (await http.post(f"/orders/{oid}/signals/approve")).status_code == 202
        for _ in range(200):
            sent = time.monotonic()
            answer = await http.get(f"/orders/{oid}/status")
            reads.append(time.monotonic() - sent)
            if answer.json()["state"] in {"COMPLETED", "CANCELLED", "FAILED"}:
                return
            await asyncio.sleep(0.25)

    for batch in range(4):  # 5 at a time, as a client fleet would
        await asyncio.gather(*(one() for _ in range(5)))
        del batch
    return starts, reads


async def test_500_abandoned_waits_leave_a_second_client_as_fast(
    http: httpx.AsyncClient, api_url: str, db: asyncpg.Pool
) -> None:
    base_starts, base_reads = await second_client(http)

    parked = new_id()  # an order that waits for review: nothing answers its waits early
    assert (await start(http, parked)).status_code == 202
    await wait_state(http, parked, {"AWAITING_APPROVAL"})
    crowd = httpx.AsyncClient(
        base_url=api_url,
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=1.0,  # each client gives up, and disconnects, after 1 s
        limits=httpx.Limits(max_connections=WAITERS, max_keepalive_connections=0),
    )

    async def abandoned_wait() -> None:
        with suppress(httpx.TimeoutException):
            await crowd.get(f"/orders/{parked}/status", params={"wait": 20})

    connections = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    try:
        crowding = asyncio.gather(*(abandoned_wait() for _ in range(WAITERS)))
        await asyncio.sleep(0.8)
        async with db.acquire() as conn:
            during = await conn.fetchval(connections)
        abandoned_before = await metric(http, "orderflow_api_status_waits_abandoned_total")
        await crowding  # every client of the crowd has gone now
        await asyncio.sleep(1)
        # The API let go of every wait its client left (it notices within 0.5 s).
        assert await metric(http, "orderflow_api_status_waits") == 0
        abandoned = await metric(http, "orderflow_api_status_waits_abandoned_total")
        assert abandoned - abandoned_before >= WAITERS - 10, abandoned - abandoned_before
        starts, reads = await second_client(http)
    finally:
        await crowd.aclose()
    # Before: start p99 44 -> 2,079 ms and status 10 -> 1,255 ms under the same crowd.
    # Floors under the 3x, 100 and 150 ms: five clients poll together, so one pause of
    # the API process late in a full run delays several reads at once (320 ms against a
    # 49 ms baseline, seen once in clean-clone CI); the crowd's harm was seconds.
    assert p99(starts) <= 3 * max(p99(base_starts), 0.1), (p99(base_starts), p99(starts))
    assert p99(reads) <= 3 * max(p99(base_reads), 0.15), (p99(base_reads), p99(reads))
    # The API's pool (10) and listener (1), two workers' pools (10 each), this test's
    # pool (20) and a few for tests and Temporal-less tools: never one per waiter.
    assert during <= 60, during
    await http.post(f"/orders/{parked}/signals/cancel", json={"reason": "test over"})
