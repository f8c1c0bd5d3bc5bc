"""Shipping's business functions: flaky_call() first, then idempotent database work."""

from __future__ import annotations

import uuid

import asyncpg

from orderflow import store
from orderflow.models import DispatchInput, PrepareInput
from workers.flaky import flaky_call


async def package_prepared(db: asyncpg.Pool, prepare: PrepareInput) -> None:
    await flaky_call()
    async with db.acquire() as conn:
        await store.prepare_shipment(
            conn,
            prepare.order_id,
            prepare.attempt,
            prepare.address.model_dump(mode="json"),
            run_id=prepare.run_id,
        )


async def carrier_dispatched(db: asyncpg.Pool, dispatch: DispatchInput) -> str:
    """Hand the package to the carrier; returns the tracking number (stable across retries)."""
    await flaky_call()
    tracking = f"TRK-{uuid.uuid4().hex[:12].upper()}"
    async with db.acquire() as conn:
        return await store.dispatch_shipment(
            conn,
            dispatch.order_id,
            dispatch.attempt,
            dispatch.address.model_dump(mode="json"),
            tracking,
            run_id=dispatch.run_id,
        )
