"""GET /orders/{id}/status?wait=S: a long poll that answers the moment the order
changes, against the whole stack (real workers, Temporal, PostgreSQL)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.test_api import new_id, start

pytestmark = pytest.mark.integration


async def test_wait_answers_with_the_terminal_state(http: httpx.AsyncClient) -> None:
    oid = new_id()
    assert (await start(http, oid)).status_code == 202
    assert (await http.post(f"/orders/{oid}/signals/approve")).status_code == 202

    sent = time.monotonic()
    resp = await http.get(f"/orders/{oid}/status", params={"wait": 20})
    waited = time.monotonic() - sent

    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["state"] == "COMPLETED", body
    assert body["source"] == "database" and body["finished_at"]
    # It answered because the order ended, not because the wait ran out.
    assert waited < 19, waited


async def test_wait_with_changed_from_follows_each_step(http: httpx.AsyncClient) -> None:
    oid = new_id()
    assert (await start(http, oid)).status_code == 202
    # Not approved: the order stops in review, so "ended" cannot be what answers.
    seen: list[str] = []
    state = "RECEIVED"
    while state != "AWAITING_APPROVAL":
        resp = await http.get(f"/orders/{oid}/status", params={"wait": 10, "changed_from": state})
        assert resp.status_code == 200, resp.text
        state = resp.json()["state"]
        seen.append(state)
        assert len(seen) < 10, seen
    assert seen[-1] == "AWAITING_APPROVAL"
    assert "RECEIVED" not in seen  # each answer is a state other than the one passed in


async def test_wait_runs_out_with_the_current_state(http: httpx.AsyncClient) -> None:
    oid = new_id()
    assert (await start(http, oid)).status_code == 202
    await http.get(f"/orders/{oid}/status", params={"wait": 10, "changed_from": "RECEIVED"})
    await http.get(f"/orders/{oid}/status", params={"wait": 10, "changed_from": "VALIDATED"})

    sent = time.monotonic()
    resp = await http.get(
        f"/orders/{oid}/status", params={"wait": 1, "changed_from": "AWAITING_APPROVAL"}
    )
    waited = time.monotonic() - sent

    assert resp.status_code == 200 and resp.json()["state"] == "AWAITING_APPROVAL", resp.text
    assert waited >= 0.9, waited  # it did wait: nothing changed while the order awaits review
    await http.post(f"/orders/{oid}/signals/cancel", json={"reason": "test over"})


async def test_wait_on_an_unknown_order_is_404(http: httpx.AsyncClient) -> None:
    resp = await http.get(f"/orders/{new_id()}/status", params={"wait": 0.5})
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"wait": 21}, "query.wait"),
        ({"wait": -1}, "query.wait"),
        ({"changed_from": "X"}, "query.changed_from"),
    ],
)
async def test_bad_wait_parameters_are_422_naming_the_field(
    http: httpx.AsyncClient, params: dict[str, object], field: str
) -> None:
    resp = await http.get(f"/orders/{new_id()}/status", params=params)  # type: ignore[arg-type]
    assert resp.status_code == 422, resp.text
    assert [p["field"] for p in resp.json()["problems"]] == [field]
