"""Faults injected into a real `make run` stack (flaky_call on), under load.

Each test breaks one component while orders are in flight, lets the supervisor
bring it back, and then checks from the database that no order was lost and
none was charged twice. Run with `make test-faults` (see docs/failure-behaviour.md).
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.faults.stack import (
    ADDRESS,
    API_TOKEN,
    TERMINAL,
    Client,
    FaultStack,
    assert_completed_exactly_once,
    query,
    stored_states,
    wait_finished,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


async def in_flight(stack: FaultStack, ids: list[str]) -> int:
    states = await stored_states(stack.dsn, ids)
    return sum(1 for oid in ids if states.get(oid) not in TERMINAL)


@dataclass(frozen=True)
class ProbeAnswers:
    """What the kubelet (readiness) and a person (/dependencies) saw during a fault."""

    api_ready: set[int]
    worker_ready: set[int]
    dependencies: list[tuple[int, dict[str, Any]]]

    def down(self, dependency: str) -> list[str]:
        """Each state /dependencies gave for ``dependency`` while answering 503."""
        return [body["dependencies"][dependency] for code, body in self.dependencies if code == 503]


async def probes_while(stack: FaultStack, http: httpx.AsyncClient, seconds: float) -> ProbeAnswers:
    """Poll the API's and the order worker's /readyz and the API's /dependencies
    (no token: all open) and keep every answer."""
    answers = ProbeAnswers(set(), set(), [])
    worker = f"http://127.0.0.1:{stack.ports.order_worker}/readyz"
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=5) as plain:
        while time.monotonic() < deadline:
            answers.api_ready.add(
                (await http.get("/readyz", headers={"Authorization": ""})).status_code
            )
            answers.worker_ready.add((await plain.get(worker)).status_code)
            deps = await http.get("/dependencies", headers={"Authorization": ""})
            answers.dependencies.append((deps.status_code, deps.json()))
            await asyncio.sleep(0.2)
    return answers


def assert_pods_stay_ready(answers: ProbeAnswers, dependency: str) -> None:
    """Readiness ignores the outage (no pod leaves its Service); /dependencies names it."""
    assert answers.api_ready == {200}, answers
    assert answers.worker_ready == {200}, answers
    assert {code for code, _ in answers.dependencies} <= {200, 503}, answers
    down = answers.down(dependency)
    assert down, f"/dependencies never reported {dependency} down: {answers}"
    assert all(state.startswith("unreachable") for state in down), down


async def test_order_worker_sigkill_mid_load(stack: FaultStack, http: httpx.AsyncClient) -> None:
    client = Client(http)
    ids, placing = client.load("kill-ow", count=12, spacing=0.25)
    await asyncio.sleep(1.5)
    assert await in_flight(stack, ids) > 0
    killed = stack.kill("order-worker", signal.SIGKILL)

    await placing
    await wait_finished(stack.dsn, ids, within=120)
    await assert_completed_exactly_once(stack.dsn, ids)

    restart = stack.restarts("order-worker")[-1]
    assert restart["exit_code"] == -signal.SIGKILL and restart["restart_in_seconds"] >= 1
    assert stack.pid("order-worker") != killed
    print("order worker SIGKILL: client saw", client.seen)


async def test_shipping_worker_down_20s(stack: FaultStack, http: httpx.AsyncClient) -> None:
    client = Client(http)
    stack.hold("shipping-worker")
    stack.kill("shipping-worker", signal.SIGKILL)
    down_at = time.monotonic()

    ids = [f"ship-down-{i}-{int(time.time())}" for i in range(5)]
    await asyncio.gather(*(client.place(oid) for oid in ids))

    # They get as far as shipping, and wait there.
    await asyncio.gather(*(client.wait_live(oid, "SHIPPING", within=12) for oid in ids))

    # Shipping has started for them: too late to cancel, outage or not.
    refused = await http.post(f"/orders/{ids[0]}/signals/cancel", json={"reason": "drill"})
    assert refused.status_code == 409 and "shipping has started" in refused.text, refused.text

    # Isolation: the order worker still takes new work. An order cancelled in review
    # now is closed without the shipping worker.
    cancelled = f"ship-down-cancel-{int(time.time())}"
    body = {"payment_id": f"pay-{cancelled}", "address": ADDRESS}
    assert (await http.post(f"/orders/{cancelled}/start", json=body)).status_code == 202
    await client.wait_live(cancelled, "AWAITING_APPROVAL", within=10)
    resp = await http.post(f"/orders/{cancelled}/signals/cancel", json={"reason": "drill"})
    assert resp.status_code == 202, resp.text
    await wait_finished(stack.dsn, [cancelled], within=30)
    charged = await query(stack.dsn, "SELECT status FROM payments WHERE order_id = $1", cancelled)
    assert charged == []

    states = await stored_states(stack.dsn, ids)
    assert not set(states.values()) & TERMINAL, states
    assert time.monotonic() - down_at < 20, "the drill took too long to show isolation"
    await asyncio.sleep(20 - (time.monotonic() - down_at))
    stack.release("shipping-worker")

    await wait_finished(stack.dsn, ids, within=90)
    await assert_completed_exactly_once(stack.dsn, ids)
    assert (await stored_states(stack.dsn, [cancelled])) == {cancelled: "CANCELLED"}


async def test_postgres_immediate_restart_mid_load(
    stack: FaultStack, http: httpx.AsyncClient
) -> None:
    client = Client(http)
    ids, placing = client.load("pg-restart", count=10, spacing=0.3)
    await asyncio.sleep(1.0)
    assert await in_flight(stack, ids) > 0
    stack.hold("postgres")
    stack.kill("postgres", signal.SIGQUIT)  # = pg_ctl stop -m immediate

    assert_pods_stay_ready(await probes_while(stack, http, 4), "database")
    # What a user sees meanwhile: the stored event log is unavailable (503), the
    # live status still answers from the workflow.
    events = await http.get(f"/orders/{ids[0]}/events")
    assert events.status_code == 503 and events.json()["error"] == "service_unavailable"
    status = await http.get(f"/orders/{ids[0]}/status")
    assert status.status_code == 200 and status.json()["source"] == "workflow", status.text
    stack.release("postgres")

    await placing
    await wait_finished(stack.dsn, ids, within=150)
    await assert_completed_exactly_once(stack.dsn, ids)
    assert (await http.get("/dependencies")).status_code == 200
    print("postgres restart: client saw", client.seen)


async def test_temporal_restart_mid_load(stack: FaultStack, http: httpx.AsyncClient) -> None:
    client = Client(http)
    ids, placing = client.load("temporal-restart", count=10, spacing=0.3)
    await asyncio.sleep(1.0)
    assert await in_flight(stack, ids) > 0
    stack.hold("temporal")
    stack.kill("temporal", signal.SIGKILL)

    assert_pods_stay_ready(await probes_while(stack, http, 3), "temporal")
    refused = await http.post(
        "/orders/temporal-down-probe/start",
        json={
            "payment_id": "p",
            "address": {"line1": "x", "city": "y", "postal_code": "1", "country": "DE"},
        },
    )
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1", refused.text
    stack.release("temporal")

    await placing
    await wait_finished(stack.dsn, ids, within=180)
    await assert_completed_exactly_once(stack.dsn, ids)
    print("temporal restart: client saw", client.seen)


def test_no_token_in_the_drills_logs(stack: FaultStack) -> None:
    """Hundreds of authenticated requests, restarts and errors later: the token
    the clients sent appears nowhere in the logs of any component."""
    text = stack.log_path.read_text()
    assert "component started" in text
    assert API_TOKEN not in text
