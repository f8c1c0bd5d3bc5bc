"""What an order asks of Temporal, counted: a change that adds a workflow task, a
signal, a persistence round trip or local-activity attempts to every order fails here
with the number. Counts, not timings: they do not move with the host's speed.

100 orders through the whole stack as `make run` runs it (its own embedded Temporal, so
its metrics count these orders only), FLAKY on, each approved 0.3 s after it is seen to
await review.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest.prometheus_text import temporal_work
from orderflow.devstack.launcher import StackProcess
from tests.integration.test_api import new_id, start

pytestmark = pytest.mark.integration

ORDERS = 100
TERMINAL = {"COMPLETED", "CANCELLED", "FAILED", "TERMINATED"}

# Measured here on 2026-12-07, two runs of 100 orders, per completed order, with a
# margin for chance (flaky_call varies the attempts, and now and then a second shipping
# run): 5.05-5.15 workflow tasks (the parent's 4 in this pattern, the child's 1), 14.0-14.5
# execution updates, 46-49 persistence requests, 11.7-12.5 local-activity
# attempts. (`make bench` counts ~4.3 tasks: its clients approve at their poll's pace,
# and an approval that lands in the first task saves one.)
AT_MOST = {
    "workflow tasks": 5.6,
    "executions started": 2.2,  # the order and its shipping run(s)
    "signals": 1.2,  # approve (and dispatch_failed when a shipping run fails)
    "describe calls": 0.5,  # status is read from PostgreSQL
    "execution updates": 15.5,
    "persistence requests": 53.0,
}
ATTEMPTS_AT_MOST = 16.0


@pytest.fixture(scope="module")
def own_stack(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackProcess]:
    root: Path = tmp_path_factory.mktemp("work-per-order")
    stack = StackProcess(root / "data", root / "stack.log", env={"DATABASE_URL": postgres_dsn})
    stack.start(within=120)
    try:
        yield stack
    finally:
        stack.stop()


def worker_attempts(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "orderflow_activity_attempts"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


async def one_order(http: httpx.AsyncClient) -> str:
    oid = new_id()
    assert (await start(http, oid)).status_code == 202
    state = "RECEIVED"
    while state not in TERMINAL:
        if state == "AWAITING_APPROVAL":
            # As a person approves: after the task that stored the review has completed
            # (an approval landing in that task costs the order one more task).
            await asyncio.sleep(0.3)
            assert (await http.post(f"/orders/{oid}/signals/approve")).status_code == 202
        answer = await http.get(f"/orders/{oid}/status", params={"wait": 20, "changed_from": state})
        assert answer.status_code == 200, answer.text
        state = answer.json()["state"]
    return state


async def test_an_order_asks_no_more_of_temporal_than_it_did(own_stack: StackProcess) -> None:
    temporal_metrics = f"http://127.0.0.1:{own_stack.ports.temporal_metrics}/metrics"
    worker_metrics = f"http://127.0.0.1:{own_stack.ports.order_worker}/metrics"
    async with httpx.AsyncClient(base_url=own_stack.url, timeout=30) as http:
        before = temporal_work((await http.get(temporal_metrics)).text)
        attempts_before = worker_attempts((await http.get(worker_metrics)).text)
        states: list[str] = []
        for _ in range(ORDERS // 10):  # 10 at a time
            states += await asyncio.gather(*(one_order(http) for _ in range(10)))
        await asyncio.sleep(2)  # the shipping runs' last tasks, and a scrape's lag
        after = temporal_work((await http.get(temporal_metrics)).text)
        attempts = worker_attempts((await http.get(worker_metrics)).text) - attempts_before
    completed = states.count("COMPLETED")
    assert completed >= ORDERS * 0.95, states
    per_order = {what: (after[what] - before[what]) / completed for what in AT_MOST}
    print("work per completed order:", {k: round(v, 2) for k, v in per_order.items()})
    print(f"local-activity attempts per order: {attempts / completed:.1f}")
    over = {what: n for what, n in per_order.items() if n > AT_MOST[what]}
    assert not over, f"an order now asks more of Temporal: {over} (at most {AT_MOST})"
    assert attempts / completed <= ATTEMPTS_AT_MOST, attempts / completed
