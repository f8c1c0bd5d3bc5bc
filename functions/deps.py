"""Shared resources of the HTTP functions, created lazily once per process.

Lazily, not in the ASGI lifespan, because behind AWS Lambda (Mangum) a warm
container serves many invocations: the Temporal client and the pool must
survive between them, and a cold start should not pay for what it never uses.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import asyncpg
from fastapi import Depends
from temporalio.client import Client

from functions.order_changes import OrderChanges
from orderflow.db import create_pool
from orderflow.settings import Settings, get_settings
from orderflow.temporal import connect


class Resources:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._pool: asyncpg.Pool | None = None
        self._changes: OrderChanges | None = None
        self._lock = asyncio.Lock()
        # Waiting status requests re-read through this, so that however many wait, a
        # couple of the pool's connections stay free for everything else.
        self.wait_reads = asyncio.Semaphore(max(1, settings.db_pool_max_size - 2))

    async def temporal(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await connect(self.settings)
        return self._client

    async def db(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await create_pool(self.settings)
        return self._pool

    async def order_changes(self) -> OrderChanges:
        if self._changes is None:
            self._changes = OrderChanges(self.settings.database_url, self.settings.status_max_waits)
        return self._changes

    async def close(self) -> None:
        if self._changes is not None:
            await self._changes.close()
            self._changes = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._client = None


_resources: Resources | None = None


def get_resources() -> Resources:
    global _resources
    if _resources is None:
        _resources = Resources(get_settings())
    return _resources


async def reset_resources() -> None:
    """Drop cached connections (shutdown; also when an event loop ends under Lambda)."""
    global _resources
    if _resources is not None:
        await _resources.close()
        _resources = None


# Async on purpose: FastAPI runs a plain `def` dependency in a thread pool, a thread
# hand-off on every request.
async def current_resources() -> Resources:
    return get_resources()


async def current_settings() -> Settings:
    return get_settings()


ResourcesDep = Annotated[Resources, Depends(current_resources)]
SettingsDep = Annotated[Settings, Depends(current_settings)]
