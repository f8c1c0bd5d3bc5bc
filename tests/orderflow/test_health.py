"""The shared probes (orderflow/health.py) against the session's real Temporal and
PostgreSQL, and against addresses where nothing listens."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Mapping
from functools import partial
from typing import Any, cast

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from prometheus_client import REGISTRY
from temporalio.client import Client

from orderflow import health
from orderflow.devstack.launcher import free_port

PROBE_PATHS = ("/healthz", "/readyz", "/dependencies")


def app_for(probes: health.Probes) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(probes.router())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probes")


def gauge(dependency: str) -> float | None:
    return REGISTRY.get_sample_value("orderflow_dependency_up", {"dependency": dependency})


@pytest.fixture
async def unreachable() -> AsyncIterator[Mapping[str, health.Check]]:
    """A Temporal client and a pool whose servers are not there (neither connects
    before its first use)."""
    client = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    pool = await asyncpg.create_pool(f"postgresql://x@127.0.0.1:{free_port()}/x", min_size=0)
    assert pool is not None
    yield {
        "temporal": partial(health.temporal_ok, client),
        "database": partial(health.database_ok, pool),
    }
    await pool.close()


async def test_everything_up(temporal_client: Client, db: asyncpg.Pool) -> None:
    checks = {
        "temporal": partial(health.temporal_ok, temporal_client),
        "database": partial(health.database_ok, db),
    }
    async with app_for(health.Probes(lambda: checks, ready=True)) as http:
        resp = await http.get("/dependencies")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "dependencies": {"temporal": "ok", "database": "ok"}}
    assert gauge("temporal") == gauge("database") == 1


async def test_readiness_is_the_process_state_not_the_dependencies(
    unreachable: Mapping[str, health.Check],
) -> None:
    probes = health.Probes(lambda: unreachable, ready=False, reason="starting")
    async with app_for(probes) as http:
        answers = [(await http.get("/readyz")).json()]
        probes.serving()
        ready = await http.get("/readyz")
        answers.append(ready.json())
        deps = await http.get("/dependencies")
        probes.stopping("draining")
        answers.append((await http.get("/readyz")).json())
        alive = await http.get("/healthz")
    assert answers == [
        {"status": "not_ready", "reason": "starting"},
        {"status": "ready", "reason": None},
        {"status": "not_ready", "reason": "draining"},
    ]
    assert ready.status_code == 200 and alive.status_code == 200
    assert deps.status_code == 503
    states = deps.json()["dependencies"]
    assert set(states) == {"temporal", "database"}
    assert all(state.startswith("unreachable (") for state in states.values()), states
    assert gauge("temporal") == gauge("database") == 0


async def test_a_hanging_dependency_costs_one_timeout() -> None:
    """Stub checks: one hangs, one answers; both run at once, the hung one is cut."""

    async def hangs() -> None:
        await asyncio.sleep(60)

    async def answers() -> None:
        return None

    started = time.monotonic()
    results = await health.check({"hangs": hangs, "answers": answers}, within=0.3)
    assert results == {"hangs": "unreachable (TimeoutError)", "answers": "ok"}
    assert time.monotonic() - started < 2
    assert gauge("hangs") == 0 and gauge("answers") == 1
    for stub in ("hangs", "answers"):  # not dependencies of anything scraped later
        health.DEPENDENCY_UP.remove(stub)


def test_the_api_and_the_workers_serve_these_probes() -> None:
    """One implementation: both HTTP apps document (and so route) the probes of this
    module, with its endpoints' own docstrings."""
    from functions.main import app as api
    from workers.health import WorkerHealth

    worker = WorkerHealth(cast(Any, None), cast(Any, None)).app()

    def documented(app: FastAPI) -> dict[str, str]:
        paths = app.openapi()["paths"]
        return {path: paths[path]["get"]["description"] for path in PROBE_PATHS}

    assert documented(api) == documented(worker)
    routes = health.Probes(lambda: {}, ready=True).router().routes
    ours = {r.path: r.endpoint for r in routes if isinstance(r, APIRoute)}
    assert documented(api) == {path: inspect.getdoc(ours[path]) for path in PROBE_PATHS}
