"""The worker's own small HTTP endpoint: liveness and readiness probes, and metrics.

Served on WORKER_HTTP_HOST and the worker's port (ORDER_WORKER_HTTP_PORT /
SHIPPING_WORKER_HTTP_PORT) by uvicorn inside the worker process, on the same
event loop. Ready means it can do its job: Temporal and PostgreSQL answer and
the worker is polling (not shutting down).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from orderflow import store

PROBE_TIMEOUT_SECONDS = 2.0


class WorkerHealth:
    def __init__(
        self,
        client: Client,
        pool: asyncpg.Pool,
        metrics: Callable[[], Awaitable[bytes]] | None = None,
    ) -> None:
        self.client = client
        self.pool = pool
        self.polling = False
        self._metrics = metrics

    async def metrics(self, _request: Request) -> Response:
        """Prometheus text: the worker's own metrics and the Temporal SDK's."""
        body = await self._metrics() if self._metrics else b""
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(self, _request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(self, _request: Request) -> JSONResponse:
        checks = {"worker": "polling" if self.polling else "not polling"}

        async def database() -> None:
            async with self.pool.acquire() as conn:
                await store.ping(conn)

        for name, probe in (
            ("temporal", self.client.service_client.check_health),
            ("database", database),
        ):
            try:
                await asyncio.wait_for(probe(), PROBE_TIMEOUT_SECONDS)
                checks[name] = "ok"
            except Exception as err:  # any failure means not ready; say which, not how
                checks[name] = f"unreachable ({type(err).__name__})"
        ready = self.polling and checks["temporal"] == checks["database"] == "ok"
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/healthz", self.healthz),
                Route("/readyz", self.readyz),
                Route("/metrics", self.metrics),
            ]
        )

    def server(self, host: str, port: int) -> uvicorn.Server:
        config = uvicorn.Config(
            self.app(), host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        return _ServerWithoutSignals(config)


class _ServerWithoutSignals(uvicorn.Server):
    """The worker process owns SIGTERM/SIGINT (to drain the Temporal worker first)
    and stops this server itself; uvicorn must not take the signals over."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
