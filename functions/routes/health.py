"""Liveness and readiness probes (also used by Kubernetes)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from functions.deps import ResourcesDep
from orderflow import store

router = APIRouter(tags=["health"])

PROBE_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive and serving."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is unreachable"}})
async def readyz(res: ResourcesDep) -> JSONResponse:
    """Temporal and PostgreSQL are both reachable: this instance can do its job."""
    checks: dict[str, str] = {}

    async def temporal() -> None:
        client = await res.temporal()
        await client.service_client.check_health()

    async def database() -> None:
        pool = await res.db()
        async with pool.acquire() as conn:
            await store.ping(conn)

    for name, probe in (("temporal", temporal), ("database", database)):
        try:
            await asyncio.wait_for(probe(), PROBE_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except Exception as err:  # any failure means not ready; say which, not how
            checks[name] = f"unreachable ({type(err).__name__})"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
