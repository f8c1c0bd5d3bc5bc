"""The Lambda entry point (Mangum) with API Gateway HTTP API events, against the
real Temporal and PostgreSQL: cold start, then warm invocations reusing connections."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from functions import deps
from orderflow.settings import get_settings

pytestmark = pytest.mark.integration


def http_api_event(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.example.com"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "orderflow",
            "domainName": "api.example.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "pytest",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "26/Nov/2026:12:00:00 +0000",
            "timeEpoch": int(time.time() * 1000),
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def invoke_in_lambda_thread(order_id: str) -> list[dict[str, Any]]:
    """One 'container': the same thread and event loop for every invocation."""
    from functions.lambda_handler import handler

    context: Any = {}

    body = {
        "payment_id": f"pay-{order_id}",
        "address": {
            "line1": "1 Main St",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
    }
    try:
        return [
            handler(http_api_event("POST", f"/orders/{order_id}/start", body), context),
            handler(http_api_event("GET", f"/orders/{order_id}/status"), context),
            handler(http_api_event("POST", f"/orders/{order_id}/start", body), context),
            handler(http_api_event("POST", "/orders/bad id!/start", body), context),
            handler(http_api_event("GET", "/readyz"), context),
            handler(http_api_event("GET", "/dependencies"), context),
        ]
    finally:
        asyncio.get_event_loop().run_until_complete(deps.reset_resources())


async def test_lambda_handler_serves_the_api(
    monkeypatch: pytest.MonkeyPatch, postgres_dsn: str, temporal_address: str, api_url: str
) -> None:
    # api_url: the order worker must be running for the status query to answer.
    monkeypatch.setenv("DATABASE_URL", postgres_dsn)
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_address)
    get_settings.cache_clear()
    await deps.reset_resources()
    oid = f"lambda-{uuid.uuid4().hex[:8]}"
    try:
        started, status, duplicate, invalid, ready, dependencies = await asyncio.to_thread(
            invoke_in_lambda_thread, oid
        )
    finally:
        get_settings.cache_clear()
    assert started["statusCode"] == 202, started
    assert json.loads(started["body"])["workflow_id"] == f"order-{oid}"
    assert status["statusCode"] == 200 and json.loads(status["body"])["order_id"] == oid
    assert duplicate["statusCode"] == 409
    assert invalid["statusCode"] == 422
    assert json.loads(invalid["body"])["error"] == "unprocessable_entity"
    # No ASGI lifespan behind Lambda: an invocation that reaches the app is served.
    assert ready["statusCode"] == 200
    assert json.loads(dependencies["body"])["dependencies"] == {"temporal": "ok", "database": "ok"}
