"""GET /orders/{id}/status?wait=S: a long poll that answers the moment the order
changes, against the whole stack (real workers, Temporal, PostgreSQL)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from tests.integration.test_api import new_id, start, wait_state

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


async def _answered_after_change(http: httpx.AsyncClient, wait: float) -> float:
    """Seconds from a cancel's 202 to the answer of a wait that was already waiting."""
    oid = new_id()
    assert (await start(http, oid)).status_code == 202
    await wait_state(http, oid, {"AWAITING_APPROVAL"})
    waiting = asyncio.create_task(
        http.get(
            f"/orders/{oid}/status",
            params={"wait": wait, "changed_from": "AWAITING_APPROVAL"},
        )
    )
    await asyncio.sleep(2)  # well into the wait: past its first read
    assert not waiting.done()
    cancel = await http.post(f"/orders/{oid}/signals/cancel", json={"reason": "test"})
    assert cancel.status_code == 202, cancel.text
    cancelled = time.monotonic()
    answer = await waiting
    assert answer.status_code == 200, answer.text
    return time.monotonic() - cancelled


async def test_a_wait_is_answered_by_the_notification_not_a_re_read(
    http: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # Before: a 1 s re-read answered too, so this passed with NOTIFY broken. A proven
    # listener means no re-reads: the answer comes with the change's notification.
    assert await _answered_after_change(http, wait=20) < 3

    # The same with the trigger's NOTIFY off: only the wait running out answers.
    async with db.acquire() as conn:
        await conn.execute("ALTER TABLE orders DISABLE TRIGGER orders_notify_state")
    try:
        assert await _answered_after_change(http, wait=8) > 5
    finally:
        async with db.acquire() as conn:
            await conn.execute("ALTER TABLE orders ENABLE TRIGGER orders_notify_state")
