"""The worker's own small HTTP endpoint: its probes and its metrics.

Served on WORKER_HTTP_HOST and the worker's port (ORDER_WORKER_HTTP_PORT /
SHIPPING_WORKER_HTTP_PORT) by uvicorn inside the worker process, on the same
event loop. The probes are the API's (orderflow/health.py): ready means the
worker polls its task queue (workers/process.py marks it), whatever Temporal
and PostgreSQL do meanwhile; live means its polls come back (workers/liveness.py);
/dependencies says what they do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from functools import partial

import asyncpg
import uvicorn
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response
from temporalio.client import Client

from orderflow import health


class WorkerHealth:
    def __init__(
        self,
        client: Client,
        pool: asyncpg.Pool,
        metrics: Callable[[], Awaitable[bytes]] | None = None,
        not_live: Callable[[], str | None] | None = None,
    ) -> None:
        self.checks: dict[str, health.Check] = {
            "temporal": partial(health.temporal_ok, client),
            "database": partial(health.database_ok, pool),
        }
        self.probes = health.Probes(
            lambda: self.checks, ready=False, reason="starting", not_live=not_live
        )
        self._metrics = metrics

    async def metrics(self) -> Response:
        """Prometheus text: the worker's own metrics and the Temporal SDK's."""
        await health.check(self.checks, health.SCRAPE_CHECK_TIMEOUT_SECONDS)
        body = await self._metrics() if self._metrics else b""
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def app(self) -> FastAPI:
        # No OpenAPI or docs pages: only the kubelet, Prometheus and people with curl call it.
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        app.include_router(self.probes.router())
        app.add_api_route("/metrics", self.metrics, methods=["GET"], include_in_schema=False)
        return app

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
