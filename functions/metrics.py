"""The API's Prometheus metrics, served at GET /metrics on the API port.

HTTP requests by route template (not raw path: order ids would explode the
series count), method and status; orders started and customer updates sent;
and, read from PostgreSQL at scrape time, the orders still open per state with
the age of the stalest one (what the "stuck orders" alert watches); and whether
Temporal and PostgreSQL answer (orderflow_dependency_up, orderflow/health.py). Behind
Lambda each container counts only its own invocations; scrape the API where it
runs as a long-lived process.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.deps import ResourcesDep
from functions.routes.health import api_checks
from orderflow import health, store
from orderflow.log import get_logger
from orderflow.metrics import announce, exposition
from orderflow.models import TERMINAL_STATES, OrderState

log = get_logger(__name__)

COMPONENT = "api"
# Well inside any scrape timeout (Prometheus caps it at the interval, 1 s in our tests):
# a slow database costs the open-orders gauges one scrape, never the whole scrape.
DB_SCRAPE_TIMEOUT_SECONDS = 0.5

HTTP_REQUESTS = Counter(
    "orderflow_http_requests",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "orderflow_http_request_duration_seconds",
    "HTTP request latency by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ORDERS_STARTED = Counter("orderflow_api_orders_started", "Order workflows started by the API.")
ORDER_UPDATES = Counter(
    "orderflow_api_order_updates",
    "Customer updates (approve, cancel, update_address) sent to orders, by result.",
    ["update", "result"],
)
ORDERS_SHED = Counter(
    "orderflow_api_orders_shed",
    "New orders refused with 503 because the stack was past capacity, by signal.",
    ["reason"],
)
for _reason in ("active_orders", "start_latency"):
    ORDERS_SHED.labels(reason=_reason)  # exported as 0 from the start, not after a first shed
STATUS_WAITS_CAPPED = Counter(
    "orderflow_api_status_waits_capped",
    "Status requests with ?wait answered at once: the process held STATUS_MAX_WAITS waits.",
)
STATUS_WAITS_ABANDONED = Counter(
    "orderflow_api_status_waits_abandoned",
    "Status waits ended early because their client went away.",
)
ADMISSION_ACTIVE_ORDERS = Gauge(
    "orderflow_api_admission_active_orders",
    "Orders being processed (not ended, not awaiting approval), as admission last read it.",
)
ADMISSION_ACTIVE_LIMIT = Gauge(
    "orderflow_api_admission_active_limit",
    "Active orders admitted at most: the completion rate times SHED_QUEUE_SECONDS, at "
    "least SHED_MIN_ACTIVE_ORDERS.",
)
ADMISSION_COMPLETION_RATE = Gauge(
    "orderflow_api_admission_completion_rate",
    "Orders ended per second over the last few seconds, as admission last read it.",
)
ADMISSION_EXPECTED_SECONDS = Gauge(
    "orderflow_api_admission_expected_processing_seconds",
    "How long a new order would spend being processed on average (active orders over "
    "the completion rate, Little's law): refused past SHED_QUEUE_SECONDS.",
)
ADMISSION_START_LATENCY = Gauge(
    "orderflow_api_admission_start_latency_seconds",
    "Moving average of how long Temporal took to accept this process's recent starts.",
)
OPEN_ORDERS = Gauge(
    "orderflow_orders_open", "Orders not in a terminal state (from the database).", ["state"]
)
OLDEST_OPEN = Gauge(
    "orderflow_orders_open_oldest_update_age_seconds",
    "Seconds since the stalest open order in each state last changed (0: none open).",
    ["state"],
)
OPEN_STATES = [s for s in OrderState if s not in TERMINAL_STATES]

router = APIRouter(tags=["health"])


def _route_template(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestMetrics:
    """Counts and times every HTTP request by route template.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` (``app.middleware``)
    runs each request through extra tasks and streams, a cost every request pays.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route, method = _route_template(scope), scope["method"]
            HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
            HTTP_LATENCY.labels(route=route, method=method).observe(time.perf_counter() - started)


def order_update(update: str, result: str) -> None:
    ORDER_UPDATES.labels(update=update, result=result).inc()


async def _refresh_open_orders(res: ResourcesDep) -> None:
    pool = await res.db()
    async with pool.acquire() as conn:
        rows = {row.state: row for row in await store.open_orders(conn)}
    for state in OPEN_STATES:
        row = rows.get(state)
        OPEN_ORDERS.labels(state=state.value).set(row.count if row else 0)
        OLDEST_OPEN.labels(state=state.value).set(row.oldest_update_age_seconds if row else 0)


async def _refresh_open_orders_or_log(res: ResourcesDep) -> None:
    try:
        await asyncio.wait_for(_refresh_open_orders(res), DB_SCRAPE_TIMEOUT_SECONDS)
    except Exception as err:  # the request metrics are still worth serving
        log.warning("open orders not refreshed", error=f"{type(err).__name__}: {err}")


@router.get("/metrics", include_in_schema=False)
async def metrics(res: ResourcesDep) -> Response:
    # At once: a scrape while a dependency is down waits for one timeout, not two.
    await asyncio.gather(
        _refresh_open_orders_or_log(res),
        health.check(api_checks(res), health.SCRAPE_CHECK_TIMEOUT_SECONDS),
    )
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> None:
    announce(COMPONENT)
    app.add_middleware(RequestMetrics)
    app.include_router(router)
