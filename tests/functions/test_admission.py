"""Admission control: new orders are refused early (503 + Retry-After) past capacity,
from measured signals; the refusals are counted. Real PostgreSQL holds the active
orders; Temporal is not needed (a refused start never reaches it)."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from functions import admission, deps
from functions.main import app
from orderflow import store
from orderflow.devstack.launcher import free_port
from orderflow.models import OrderState
from orderflow.settings import Settings
from tests.orderflow.test_store import ADDRESS, make_order, new_id

BODY = {
    "payment_id": "pay-1",
    "address": {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
}


def shed_count(reason: str) -> float:
    return REGISTRY.get_sample_value("orderflow_api_orders_shed_total", {"reason": reason}) or 0.0


def client_with(
    settings: Settings, resources: deps.Resources | None = None
) -> Iterator[TestClient]:
    """The app with ``settings`` (and ``resources``, made from them if not given)."""
    resources = resources or deps.Resources(settings)
    app.dependency_overrides[deps.current_resources] = lambda: resources
    app.dependency_overrides[deps.current_settings] = lambda: settings
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
        # The pool lives on the client's event loop: close it there, or its
        # connections outlive the test and PostgreSQL's shutdown waits for them.
        assert c.portal is not None
        c.portal.call(resources.close)
    app.dependency_overrides.clear()


@pytest.fixture
def nowhere() -> str:
    return f"127.0.0.1:{free_port()}"  # a Temporal that does not answer


async def test_past_the_active_order_limit_a_start_is_refused_with_retry_after(
    postgres_dsn: str, db: asyncpg.Pool, nowhere: str
) -> None:
    async with db.acquire() as conn:
        active = (await store.admission_counts(conn, admission.ACTIVE_STATES, 5, [])).active
    limit = active + 1
    for _ in range(2):  # two more orders being processed: one past the limit
        await make_order(db, new_id())
    settings = Settings(
        database_url=postgres_dsn,
        temporal_address=nowhere,
        shed_min_active_orders=limit,
        shed_queue_seconds=0.001,  # whatever ended lately, the limit stays the minimum
    )
    before = shed_count("active_orders")

    for c in client_with(settings):
        resp = c.post(f"/orders/{new_id()}/start", json=BODY)

    assert resp.status_code == 503, resp.text
    assert resp.headers["Retry-After"] == "1"
    assert resp.json()["error"] == "service_unavailable"
    message = resp.json()["message"]
    assert f"(limit {limit}: a new one would take over 0.001 s on average)" in message
    assert "not started" in resp.json()["message"]
    assert shed_count("active_orders") == before + 1


async def test_orders_awaiting_approval_do_not_count_as_load(
    postgres_dsn: str, db: asyncpg.Pool, nowhere: str
) -> None:
    async with db.acquire() as conn:
        active = (await store.admission_counts(conn, admission.ACTIVE_STATES, 5, [])).active
    for _ in range(3):
        oid = new_id()
        await make_order(db, oid)
        async with db.acquire() as conn:
            await store.advance_order(conn, oid, OrderState.AWAITING_APPROVAL, "order_validated")
    settings = Settings(
        database_url=postgres_dsn,
        temporal_address=nowhere,
        shed_min_active_orders=max(active, 1),
        shed_queue_seconds=0.001,
    )

    for c in client_with(settings):
        resp = c.post(f"/orders/{new_id()}/start", json=BODY)

    # Admitted: it went on to Temporal, which is not there.
    assert resp.status_code == 503, resp.text
    assert "Temporal is unavailable" in resp.json()["message"]


def test_slow_starts_shed_until_temporal_is_seen_to_have_recovered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr("functions.admission.time.monotonic", lambda: now[0])
    gate = admission.Admission(Settings(shed_max_start_latency_seconds=1.0))
    gate.observe_start(0.05)
    assert gate.start_latency() == pytest.approx(0.05)
    for _ in range(10):  # a second of slow starts, 10 a second
        now[0] += 0.1
        gate.observe_start(3.0)
    assert gate.start_latency() > 1.0
    before = shed_count("start_latency")
    with pytest.raises(HTTPException) as refused:
        gate._check_latency()
    assert refused.value.status_code == 503
    assert refused.value.headers == {"Retry-After": "1"}
    assert shed_count("start_latency") == before + 1

    # No start for a while (all refused): the slow average is forgotten, so the next
    # start goes through and measures Temporal again.
    now[0] += admission.LATENCY_MEMORY_SECONDS + 0.1
    assert gate.start_latency() == 0.0
    gate._check_latency()
    gate.observe_start(0.04)
    assert gate.start_latency() == pytest.approx(0.04)


def test_a_few_slow_starts_among_fast_ones_do_not_shed(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("functions.admission.time.monotonic", lambda: now[0])
    gate = admission.Admission(Settings(shed_max_start_latency_seconds=0.5))
    for latency in [0.05] * 10 + [2.0, 2.0] + [0.05] * 5:  # 10 starts a second
        now[0] += 0.1
        gate.observe_start(latency)
        gate._check_latency()  # does not raise
    # Starts that land at once weigh by the time between them, not one each.
    for _ in range(5):
        gate.observe_start(3.0)
    gate._check_latency()
    assert gate.start_latency() < 0.5


def test_zero_turns_each_signal_off() -> None:
    gate = admission.Admission(Settings(shed_queue_seconds=0, shed_max_start_latency_seconds=0))
    gate.observe_start(60.0)
    gate._check_latency()  # does not raise
    gate.started("o-1")
    assert gate._started == {}  # nothing reads it, so nothing is kept


async def test_orders_started_but_not_yet_stored_count_until_the_database_has_them(
    postgres_dsn: str, db: asyncpg.Pool
) -> None:
    async with db.acquire() as conn:
        active = (await store.admission_counts(conn, admission.ACTIVE_STATES, 5, [])).active
    res = deps.Resources(Settings(database_url=postgres_dsn))
    gate = admission.Admission(
        Settings(shed_min_active_orders=active + 1, shed_queue_seconds=0.001)
    )
    queued, stored = new_id(), new_id()
    try:
        # Two orders Temporal holds for their first step: invisible to the database.
        for order_id in (queued, stored):
            await gate.admit(res)
            gate.started(order_id)
        with pytest.raises(HTTPException) as refused:
            await gate.admit(res)
        assert "processed (limit" in str(refused.value.detail)

        # One of them is stored now (active, so still load); the other still queued.
        await make_order(db, stored)
        gate._active_read_at = float("-inf")  # the next admission reads afresh
        with pytest.raises(HTTPException):
            await gate.admit(res)
        assert gate._started == {queued: gate._started[queued]}  # the stored one is known
    finally:
        await res.close()


async def test_an_admitted_start_holds_its_place_until_started_or_released(
    postgres_dsn: str,
) -> None:
    # Before: an admitted start counted only once Temporal had answered it, and then only
    # from the next read, so starts admitted together (at 34 orders/s, up to ~17 while
    # Temporal took 0.5 s) all went past the limit.
    res = deps.Resources(Settings(database_url=postgres_dsn))
    try:
        gate = admission.Admission(Settings(shed_min_active_orders=1, shed_queue_seconds=0.001))
        gate._limit = 10**6  # whatever the database holds, the first start is admitted
        gate._read_active = _no_read  # type: ignore[method-assign]
        gate._active_read_at = float("inf")  # nor does a later one read again
        await gate.admit(res)
        gate._limit = gate._active  # one place left
        await gate.admit(res)  # neither start answered yet: both hold a place
        with pytest.raises(HTTPException) as refused:
            await gate.admit(res)
        assert f"{gate._active} orders are being processed" in str(refused.value.detail)

        gate.release()  # one was not started after all (a 409, Temporal down)
        await gate.admit(res)
        gate.started("o-1")  # accepted by Temporal: still load, until stored
        with pytest.raises(HTTPException):
            await gate.admit(res)
    finally:
        await res.close()


async def test_a_read_keeps_the_places_of_starts_not_answered_yet(postgres_dsn: str) -> None:
    res = deps.Resources(Settings(database_url=postgres_dsn))
    try:
        gate = admission.Admission(Settings(shed_min_active_orders=10**6, shed_queue_seconds=1))
        await gate.admit(res)
        await gate.admit(res)
        gate.started("o-1")
        await gate._read_active(res)
        held = gate._active
        gate.release()
        await gate._read_active(res)
        assert gate._active == held - 1
    finally:
        await res.close()


def test_a_start_that_fails_gives_its_place_back(postgres_dsn: str, nowhere: str) -> None:
    settings = Settings(
        database_url=postgres_dsn,
        temporal_address=nowhere,
        shed_min_active_orders=10**6,
    )
    for c in client_with(settings):
        resp = c.post(f"/orders/{new_id()}/start", json=BODY)
        assert resp.status_code == 503, resp.text  # Temporal does not answer: not started
        gate = admission._admissions[id(settings)]
        assert gate._reserved == 0
        assert gate._started == {}


async def _no_read(res: deps.Resources) -> None:
    return None


async def test_the_active_order_limit_follows_how_fast_the_stack_finishes_orders(
    postgres_dsn: str, db: asyncpg.Pool
) -> None:
    for _ in range(2):  # at least two orders in progress
        await make_order(db, new_id())
    async with db.acquire() as conn:
        active = (await store.admission_counts(conn, admission.ACTIVE_STATES, 5, [])).active
    # More orders than are in progress finished just now.
    finished = active + 5
    for _ in range(finished):
        oid = new_id()
        await make_order(db, oid)
        async with db.acquire() as conn:
            await store.advance_order(conn, oid, OrderState.COMPLETED, "order_completed")
    res = deps.Resources(Settings(database_url=postgres_dsn))
    try:
        # Admitting what the stack finishes in a whole rate window: all that just ended.
        paced = admission.Admission(
            Settings(shed_min_active_orders=1, shed_queue_seconds=admission.RATE_WINDOW_SECONDS)
        )
        await paced.admit(res)  # admitted: fewer in progress than that
        assert paced.active_limit() >= finished

        # The same stack, admitting only what it finishes in 10 ms: the minimum, 1.
        hurried = admission.Admission(Settings(shed_min_active_orders=1, shed_queue_seconds=0.01))
        with pytest.raises(HTTPException) as refused:
            await hurried.admit(res)
        assert hurried.active_limit() == 1
        assert "(limit 1: a new one would take over 0.01 s on average)" in str(refused.value.detail)
    finally:
        await res.close()


def test_one_slow_start_after_a_quiet_spell_does_not_shed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: after 2 s without starts the next start's latency replaced the average
    # outright, so one slow start (a cold connection) meant 2 s of 503s.
    now = [1000.0]
    monkeypatch.setattr("functions.admission.time.monotonic", lambda: now[0])
    gate = admission.Admission(Settings(shed_max_start_latency_seconds=0.5))
    gate.observe_start(3.0)
    now[0] += 0.1
    gate._check_latency()  # does not raise
    now[0] += 0.1
    gate.observe_start(3.0)
    now[0] += 0.1
    gate.observe_start(3.0)  # the third slow start in a row: now it is Temporal
    with pytest.raises(HTTPException):
        gate._check_latency()


async def test_orders_not_written_for_minutes_are_not_load(db: asyncpg.Pool) -> None:
    # Before: every unfinished row counted for good, so rows of orders nothing will
    # finish (ended in Temporal, not reconciled yet) could refuse every start.
    oid = new_id()
    async with db.acquire() as conn:
        await store.record_order(conn, oid, f"pay-{oid}", ADDRESS, [{"sku": "ABC", "qty": 1}])
        fresh = await store.admission_counts(conn, admission.ACTIVE_STATES, 5, [])
        await conn.execute(
            "UPDATE orders SET updated_at = now() - interval '10 minutes' WHERE id = $1", oid
        )
        stale = await store.admission_counts(
            conn, admission.ACTIVE_STATES, 5, [], admission.ACTIVE_WITHIN_SECONDS
        )
    assert stale.active == fresh.active - 1


def test_the_limit_is_the_active_orders_a_new_one_can_wait_behind() -> None:
    # 10 orders ended a second: with a 6 s budget, 60 may be in progress (Little's law).
    gate = admission.Admission(Settings(shed_queue_seconds=6, shed_min_active_orders=1))
    assert gate.limit_for(ended_per_second=10) == 60
    assert gate.limit_for(ended_per_second=0) == 1
