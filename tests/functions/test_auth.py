"""API_TOKEN: the order endpoints need the bearer token when it is set; probes do
not. Auth runs before validation, so a request that passes auth and carries bad
input gets 422 -- which is how these tests see that auth let it through without
touching Temporal or PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from functions.deps import current_settings
from functions.main import app
from orderflow.settings import Settings

TOKEN = "tok-9f8e7d6c5b4a"
BAD_BODY: dict[str, Any] = {"payment_id": ""}  # fails validation once past auth


@pytest.fixture
def client() -> Iterator[TestClient]:
    yield TestClient(app, raise_server_exceptions=False)
    app.dependency_overrides.clear()


def configure(**fields: Any) -> None:
    settings = Settings(**fields)
    app.dependency_overrides[current_settings] = lambda: settings


WRITES = [
    "/orders/o-1/start",
    "/orders/o-1/signals/approve",
    "/orders/o-1/signals/cancel",
    "/orders/o-1/signals/update-address",
]
READS = ["/orders/o 1/status", "/orders/o 1/events"]  # invalid id: 422 once past auth


def test_without_api_token_everything_is_open(client: TestClient) -> None:
    configure(api_token=None)
    assert client.post(WRITES[0], json=BAD_BODY).status_code == 422
    assert client.get(READS[0]).status_code == 422


@pytest.mark.parametrize("path", WRITES)
@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "],
)
def test_writes_need_the_exact_token(client: TestClient, path: str, header: str | None) -> None:
    configure(api_token=SecretStr(TOKEN))
    headers = {"Authorization": header} if header else {}
    resp = client.post(path, json=BAD_BODY, headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.json() == {"error": "unauthorized", "message": "missing or invalid bearer token"}
    assert resp.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in resp.text


@pytest.mark.parametrize("path", WRITES)
def test_the_right_token_gets_through(client: TestClient, path: str) -> None:
    configure(api_token=SecretStr(TOKEN))
    resp = client.post(
        path.replace("o-1", "o 1"), json=BAD_BODY, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert resp.status_code == 422, resp.text


@pytest.mark.parametrize("path", READS)
def test_reads_need_the_token_unless_public(client: TestClient, path: str) -> None:
    configure(api_token=SecretStr(TOKEN))
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 422
    configure(api_token=SecretStr(TOKEN), api_public_reads=True)
    assert client.get(path).status_code == 422
    # Public reads do not open the writes.
    assert client.post(WRITES[1]).status_code == 401


def test_health_stays_open(client: TestClient) -> None:
    configure(api_token=SecretStr(TOKEN))
    assert client.get("/healthz").status_code == 200


def test_schema_marks_exactly_the_order_endpoints_as_protected() -> None:
    paths = app.openapi()["paths"]
    for path, operations in paths.items():
        for operation in operations.values():
            protected = operation.get("security") == [{"HTTPBearer": []}]
            assert protected == path.startswith("/orders/"), path


def test_the_comparison_is_constant_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = secrets.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(secrets, "compare_digest", spy)
    configure(api_token=SecretStr(TOKEN))
    client.post(WRITES[1], headers={"Authorization": "Bearer guess"})
    assert calls == [(b"guess", TOKEN.encode())]
