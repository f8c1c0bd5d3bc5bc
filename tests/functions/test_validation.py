"""Bad input gets a 422 with a JSON body naming the problem, before any service is
touched (no Temporal or PostgreSQL runs for these tests)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.main import app

client = TestClient(app, raise_server_exceptions=False)
ADDRESS: dict[str, Any] = {
    "line1": "1 Main St",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}
GOOD: dict[str, Any] = {"payment_id": "pay-1", "address": ADDRESS}


def with_(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


@pytest.mark.parametrize(
    ("order_id", "body", "field"),
    [
        ("has space", GOOD, "path.order_id"),
        ("x" * 65, GOOD, "path.order_id"),
        ("ok-1", with_(payment_id=""), "payment_id"),
        ("ok-1", with_(items=[{"sku": "ABC", "qty": 0}]), "items.0.qty"),
        ("ok-1", with_(items=[]), "items"),
        ("ok-1", with_(address={**ADDRESS, "country": "Germany"}), "address.country"),
        ("ok-1", with_(address={**ADDRESS, "line1": ""}), "address.line1"),
        ("ok-1", with_(address={**ADDRESS, "city": "x" * 101}), "address.city"),
        ("ok-1", with_(surprise=True), "surprise"),
        ("ok-1", {"address": ADDRESS}, "payment_id"),
    ],
)
def test_start_rejects_bad_input_with_the_field(
    order_id: str, body: dict[str, Any], field: str
) -> None:
    resp = client.post(f"/orders/{order_id}/start", json=body)
    assert resp.status_code == 422, resp.text
    data = resp.json()
    assert data["error"] == "unprocessable_entity"
    assert field in [p["field"] for p in data["problems"]], data
    assert "Traceback" not in resp.text


def test_malformed_json_is_422_not_500() -> None:
    resp = client.post(
        "/orders/ok-1/start", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422
    assert resp.json()["error"] == "unprocessable_entity"


def test_body_that_is_not_utf8_is_422_not_400() -> None:
    resp = client.post(
        "/orders/ok-1/start", content=b"\xff\xfe{", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422
    assert resp.json()["problems"] == [{"field": "body", "problem": "not valid UTF-8 JSON"}]


def test_update_address_requires_an_address() -> None:
    resp = client.post("/orders/ok-1/signals/update-address", json={"address": {"line1": "x"}})
    assert resp.status_code == 422
    fields = {p["field"] for p in resp.json()["problems"]}
    assert {"address.city", "address.postal_code", "address.country"} <= fields


def test_unknown_route_is_json_404() -> None:
    resp = client.get("/nope")
    assert resp.status_code == 404
    assert resp.json() == {"error": "not_found", "message": "Not Found"}


@pytest.mark.parametrize(
    ("query", "field"), [("liv=true", "query.liv"), ("live=maybe", "query.live")]
)
def test_status_rejects_unknown_or_bad_query_parameters(query: str, field: str) -> None:
    resp = client.get(f"/orders/ok-1/status?{query}")
    assert resp.status_code == 422, resp.text
    assert field in [p["field"] for p in resp.json()["problems"]], resp.json()
