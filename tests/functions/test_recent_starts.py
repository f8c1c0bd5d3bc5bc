"""Status of an order this API process has just started, before anything is stored:
for a few seconds the API answers from its own record of the start, then from
Temporal's. Real Temporal and PostgreSQL; no worker polls the order's queue, so
nothing ever stores it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from temporalio.client import Client

from functions import deps
from functions.recent_starts import RecentStarts
from orderflow.settings import Settings
from tests.functions.test_admission import client_with
from tests.orderflow.test_store import ADDRESS, new_id


@pytest.fixture
def unpolled(
    postgres_dsn: str, temporal_address: str
) -> Iterator[tuple[TestClient, deps.Resources, str]]:
    """The app starting orders on a task queue no worker polls, with its resources."""
    oid = new_id()
    settings = Settings(
        database_url=postgres_dsn,
        temporal_address=temporal_address,
        order_task_queue=f"nobody-polls-{oid}",
        shed_queue_seconds=0,
    )
    resources = deps.Resources(settings)
    for client in client_with(settings, resources):
        yield client, resources, oid


async def test_a_just_started_order_is_received_without_asking_temporal_then_with(
    unpolled: tuple[TestClient, deps.Resources, str], temporal_client: Client
) -> None:
    client, resources, oid = unpolled
    sent = datetime.now(UTC)
    started = client.post(
        f"/orders/{oid}/start", json={"payment_id": f"pay-{oid}", "address": ADDRESS}
    )
    assert started.status_code == 202, started.text
    first = client.get(f"/orders/{oid}/status")
    assert first.status_code == 200, first.text
    assert (first.json()["state"], first.json()["source"]) == ("RECEIVED", "temporal")
    assert abs(datetime.fromisoformat(first.json()["started_at"]) - sent) < timedelta(seconds=5)

    # Temporal's record now says the workflow ended; the API's record of the start it
    # sent still answers, so Temporal was not asked.
    await temporal_client.get_workflow_handle(f"order-{oid}").terminate("test: ended from outside")
    remembered = client.get(f"/orders/{oid}/status")
    assert (remembered.status_code, remembered.json()["state"]) == (200, "RECEIVED")

    # Once the start is forgotten, Temporal is asked, and an order that ended without
    # being stored is not one being received.
    resources.recent_starts = RecentStarts(memory_seconds=0)
    asked = client.get(f"/orders/{oid}/status")
    assert asked.status_code == 503, asked.text
    assert "status" in asked.json()["message"]


def test_a_start_is_forgotten_after_the_memory_even_behind_a_newer_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    record = RecentStarts(memory_seconds=5)
    at = datetime(2026, 12, 4, tzinfo=UTC)
    record.add("a", at)
    now[0] = 101
    record.add("b", at + timedelta(seconds=1))
    now[0] = 104
    record.add("a", at + timedelta(seconds=4))  # started again (a 409 by then): from now
    assert record.started_at("unknown") is None
    now[0] = 105.5
    assert record.started_at("b") == at + timedelta(seconds=1)
    now[0] = 106.5  # "b" is 5.5 s old, the second start of "a" 2.5 s
    assert record.started_at("b") is None
    assert record.started_at("a") == at + timedelta(seconds=4)
    now[0] = 109.5
    assert record.started_at("a") is None
