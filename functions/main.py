"""The HTTP functions as one ASGI app (served by uvicorn, or by Lambda via Mangum)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from functions import errors, metrics
from functions.deps import reset_resources
from functions.limits import BodySizeLimit
from functions.routes import health, orders
from orderflow.settings import get_settings
from orderflow.tracing import instrument_fastapi


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    await reset_resources()


def create_app() -> FastAPI:
    app = FastAPI(
        title="Orderflow",
        version=version("orderflow"),
        summary="Start orders, act on them, and follow them to the end.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=get_settings().api_max_body_bytes)
    app.include_router(orders.router)
    app.include_router(health.router)
    metrics.install(app)
    if get_settings().tracing_enabled:
        instrument_fastapi(app)
    return app


app = create_app()
