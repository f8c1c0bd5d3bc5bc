"""Liveness, readiness and dependency state: one implementation for the API and the workers.

Each process serves three endpoints on its own port, each answering one question
(Kubernetes' probe guidance: kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle
and .../configuration/liveness-readiness-startup-probes):

* ``GET /healthz``, liveness: the event loop answers, and for a worker, its poller
  works (workers/liveness.py: no poll came back from Temporal for minutes, far past
  an idle worker's long polls and a Temporal restart). It never checks a dependency
  itself: a failed liveness probe restarts the container, which cannot fix
  PostgreSQL or Temporal and would restart every pod at once during a short outage.
* ``GET /readyz``, readiness: this process takes work. The API from start-up until
  it shuts down; a worker while its Temporal worker polls (not before, not while
  it drains). Not the dependencies either: a pod that is not ready is taken out of
  its Service's endpoints, and all pods share one PostgreSQL and one Temporal, so a
  10 s database restart would take *every* API pod out together and clients would
  get refused connections instead of the API's 503 with ``Retry-After``, and every
  status read that the live workflow could still answer would be lost.
* ``GET /dependencies``: what each dependency answers right now, 200 when all do and
  503 when one does not (for people and `make run`'s start-up wait; never a probe,
  for the reason above). The same state is exported, for dashboards and alerts, as
  ``orderflow_dependency_up{dependency}`` (1 up, 0 down), refreshed at every call
  and at every ``/metrics`` scrape.

What a caller sees while a dependency is down is in the answers themselves: the
API's 503 with ``Retry-After`` (functions/errors.py).
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations,
# and the one naming this instance's checks (Probes.router) is local, not a module global.
import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from prometheus_client import Gauge
from pydantic import BaseModel
from temporalio.client import Client

from orderflow import store

Check = Callable[[], Awaitable[None]]
# What a process checks, as a FastAPI dependency (so the API's checks use the same
# cached connections as its routes, and tests can override them).
ChecksProvider = Callable[..., Mapping[str, Check]]

# /dependencies: long enough for a first connection to a remote Temporal.
CHECK_TIMEOUT_SECONDS = 2.0
# At a /metrics scrape: well inside any scrape timeout (1 s in our tests).
SCRAPE_CHECK_TIMEOUT_SECONDS = 0.5

DEPENDENCY_UP = Gauge(
    "orderflow_dependency_up",
    "1 when the dependency answered this process's last check, 0 when it did not.",
    ["dependency"],
)


async def temporal_ok(client: Client) -> None:
    """The frontend's gRPC health service says SERVING."""
    if not await client.service_client.check_health():
        raise ConnectionError("Temporal frontend is not serving")


async def database_ok(pool: asyncpg.Pool) -> None:
    """A pooled connection runs a statement."""
    async with pool.acquire() as conn:
        await store.ping(conn)


async def check(checks: Mapping[str, Check], within: float) -> dict[str, str]:
    """Run every check at once, each bounded by ``within``; set the gauge; name each result."""

    async def one(name: str, probe: Check) -> tuple[str, str]:
        try:
            await asyncio.wait_for(probe(), within)
        except Exception as err:  # any failure means down; say which kind, not the details
            DEPENDENCY_UP.labels(dependency=name).set(0)
            return name, f"unreachable ({type(err).__name__})"
        DEPENDENCY_UP.labels(dependency=name).set(1)
        return name, "ok"

    return dict(await asyncio.gather(*(one(name, probe) for name, probe in checks.items())))


class Liveness(BaseModel):
    status: Literal["ok", "not_live"]
    reason: str | None = None


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    reason: str | None = None


class Dependencies(BaseModel):
    status: Literal["ok", "degraded"]
    dependencies: dict[str, str]


class Probes:
    """One process's probes. ``ready`` is the process's own state, set by its owner."""

    def __init__(
        self,
        checks: ChecksProvider,
        *,
        ready: bool,
        reason: str = "starting",
        not_live: Callable[[], str | None] | None = None,
    ) -> None:
        self._checks = checks
        self.ready = ready
        self.reason = None if ready else reason
        # Why the process is not live (a worker whose poller stopped), None while it is.
        self._not_live = not_live or (lambda: None)

    def serving(self) -> None:
        self.ready, self.reason = True, None

    def stopping(self, reason: str) -> None:
        self.ready, self.reason = False, reason

    def router(self) -> APIRouter:
        router = APIRouter(tags=["health"])
        checks_dep = Annotated[Mapping[str, Check], Depends(self._checks)]

        @router.get(
            "/healthz",
            response_model=Liveness,
            responses={503: {"model": Liveness, "description": "a worker's poller stopped"}},
        )
        async def healthz() -> JSONResponse:
            """Liveness: the process answers (and a worker's poller works). Never a check
            of PostgreSQL or Temporal."""
            reason = self._not_live()
            body = Liveness(status="not_live" if reason else "ok", reason=reason)
            return JSONResponse(
                body.model_dump(exclude_none=True), status_code=503 if reason else 200
            )

        @router.get(
            "/readyz",
            response_model=Readiness,
            responses={503: {"model": Readiness, "description": "starting or stopping"}},
        )
        async def readyz() -> JSONResponse:
            """Readiness: this process takes work (the API: started and not shutting
            down; a worker: polling, not draining). Independent of the dependencies,
            so a database restart does not take every pod out of its Service."""
            body = Readiness(status="ready" if self.ready else "not_ready", reason=self.reason)
            return JSONResponse(body.model_dump(), status_code=200 if self.ready else 503)

        @router.get(
            "/dependencies",
            response_model=Dependencies,
            responses={503: {"model": Dependencies, "description": "a dependency is down"}},
        )
        async def dependencies(checks: checks_dep) -> JSONResponse:
            """Whether Temporal and PostgreSQL answer this process now (not a probe)."""
            results = await check(checks, CHECK_TIMEOUT_SECONDS)
            up = all(state == "ok" for state in results.values())
            body = Dependencies(status="ok" if up else "degraded", dependencies=results)
            return JSONResponse(body.model_dump(), status_code=200 if up else 503)

        return router
