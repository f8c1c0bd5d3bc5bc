"""The asyncpg connection pool, configured once for every process."""

from __future__ import annotations

import json

import asyncpg

from orderflow.settings import Settings


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSONB columns travel as Python objects; asyncpg hands them over as text otherwise.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(settings: Settings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        command_timeout=settings.db_command_timeout_seconds,
        init=_init_connection,
    )
    assert pool is not None
    return pool
