"""Wait until a service can do its job, with a bound and a clear error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
from temporalio.client import Client


class NotReady(RuntimeError):
    pass


async def wait_for(what: str, probe: Callable[[], Awaitable[None]], within: float) -> None:
    deadline = time.monotonic() + within
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            await probe()
            return
        except Exception as err:
            last = err
            await asyncio.sleep(0.2)
    raise NotReady(f"{what} not ready after {within:.0f}s: {last}")


def postgres(dsn: str) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=2)
        await conn.close()

    return probe


def temporal(address: str, namespace: str) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        client = await Client.connect(address, namespace=namespace)
        await client.service_client.check_health()

    return probe


def http_ok(*urls: str) -> Callable[[], Awaitable[None]]:
    """Every URL answers 2xx."""

    async def probe() -> None:
        async with httpx.AsyncClient(timeout=2) as http:
            for url in urls:
                resp = await http.get(url)
                resp.raise_for_status()

    return probe


def serving_and_connected(base_url: str) -> Callable[[], Awaitable[None]]:
    """An API or worker (orderflow/health.py) takes work (/readyz) and reaches
    PostgreSQL and Temporal (/dependencies). Readiness alone says nothing of the
    dependencies, and the next component, or the developer, should not start on a
    stack that cannot reach its database."""
    return http_ok(f"{base_url}/readyz", f"{base_url}/dependencies")
