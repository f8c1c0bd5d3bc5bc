"""Black-box races against a running stack: are accepted answers honoured?

    python -m loadtest.protocol_check cancel-race   # make protocol-check
    python -m loadtest.protocol_check terminate

``cancel-race``: ORDERS orders, each approved; at a random moment in the first 1.6 s
after the approve an address change, and 0-0.4 s later a cancel. Every cancel answered
202 must end CANCELLED with nothing left charged.

``terminate``: ORDERS orders, half approved; each terminated in Temporal (as from its
UI) at a random moment in its first 1.5 s. Within 30 s every terminated order must read
a terminal state; then 10 new orders must be admitted and complete.

Drives the API over HTTP (API, API_TOKEN) and Temporal's frontend for the terminate
(TEMPORAL_ADDRESS), as a client and an operator would. Exits 1 if a promise broke.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.service import RPCError

ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
MOVED = {**ADDRESS, "city": "Paris"}
TERMINAL = {"COMPLETED", "CANCELLED", "FAILED", "TERMINATED"}


@dataclass
class Order:
    order_id: str
    answers: dict[str, int] = field(default_factory=dict)
    final: dict[str, Any] = field(default_factory=dict)
    terminated: bool = False


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _start(http: httpx.AsyncClient, order: Order) -> bool:
    answer = await http.post(
        f"/orders/{order.order_id}/start",
        json={"payment_id": f"pay-{order.order_id}", "address": ADDRESS},
    )
    order.answers["start"] = answer.status_code
    return answer.status_code == 202


async def _wait_for(
    http: httpx.AsyncClient, order: Order, states: set[str], within: float
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = await http.get(f"/orders/{order.order_id}/status")
        if answer.status_code == 200:
            body = answer.json()
            if body["state"] in states:
                break
        await asyncio.sleep(0.2)
    order.final = body
    return body


async def _cancel_race(http: httpx.AsyncClient, order: Order) -> None:
    if not await _start(http, order):
        return
    await _wait_for(http, order, {"AWAITING_APPROVAL"} | TERMINAL, 15)
    order.answers["approve"] = (
        await http.post(f"/orders/{order.order_id}/signals/approve")
    ).status_code
    await asyncio.sleep(random.uniform(0, 1.6))
    update = asyncio.create_task(
        http.post(f"/orders/{order.order_id}/signals/update-address", json={"address": MOVED})
    )
    await asyncio.sleep(random.uniform(0, 0.4))
    cancel = await http.post(f"/orders/{order.order_id}/signals/cancel", json={"reason": "race"})
    order.answers["cancel"] = cancel.status_code
    order.answers["update"] = (await update).status_code
    await _wait_for(http, order, TERMINAL, 60)


async def _terminated(
    http: httpx.AsyncClient, temporal: Client, order: Order, approve: bool
) -> None:
    if not await _start(http, order):
        return
    started = time.monotonic()
    if approve:
        await asyncio.sleep(random.uniform(0, 0.5))
        await http.post(f"/orders/{order.order_id}/signals/approve")
    await asyncio.sleep(max(0.0, random.uniform(0, 1.5) - (time.monotonic() - started)))
    try:
        await temporal.get_workflow_handle(f"order-{order.order_id}").terminate("protocol check")
        order.terminated = True
    except RPCError:
        pass  # it had ended already


async def _run(scenario: str, orders: int, api: str, token: str, temporal_address: str) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    tag = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as http:
        if scenario == "cancel-race":
            batch = [Order(f"race-{tag}-{i}") for i in range(orders)]
            await _staggered([_cancel_race(http, o) for o in batch])
            return _report_cancel_race(batch)
        temporal = await Client.connect(temporal_address)
        batch = [Order(f"term-{tag}-{i}") for i in range(orders)]
        await _staggered([_terminated(http, temporal, o, i % 2 == 0) for i, o in enumerate(batch)])
        ended = [o for o in batch if o.terminated]
        _out(f"terminated {len(ended)} of {len(batch)} orders; waiting up to 30 s for their status")
        since = time.monotonic()
        await asyncio.gather(*(_wait_for(http, o, TERMINAL, 30) for o in ended))
        took = time.monotonic() - since
        after = [Order(f"after-{tag}-{i}") for i in range(10)]
        await _staggered([_approved(http, o) for o in after])
        return _report_terminate(ended, took, after)


async def _approved(http: httpx.AsyncClient, order: Order) -> None:
    if not await _start(http, order):
        return
    await _wait_for(http, order, {"AWAITING_APPROVAL"} | TERMINAL, 15)
    await http.post(f"/orders/{order.order_id}/signals/approve")
    await _wait_for(http, order, TERMINAL, 30)


async def _staggered(work: list[Any], per_second: float = 10) -> None:
    tasks = []
    for job in work:
        tasks.append(asyncio.create_task(job))
        await asyncio.sleep(1 / per_second)
    await asyncio.gather(*tasks)


def _report_cancel_race(batch: list[Order]) -> int:
    accepted = [o for o in batch if o.answers.get("cancel") == 202]
    broken = [
        o
        for o in accepted
        if o.final.get("state") != "CANCELLED" or o.final.get("payment_status") == "charged"
    ]
    _out(f"starts: {dict(Counter(o.answers.get('start') for o in batch))}")
    _out(f"cancels: {dict(Counter(o.answers.get('cancel') for o in batch))}")
    _out(f"address changes: {dict(Counter(o.answers.get('update') for o in batch))}")
    _out(f"final states: {dict(Counter(o.final.get('state') for o in batch))}")
    _out(f"cancels answered 202: {len(accepted)}; not CANCELLED or still charged: {len(broken)}")
    for o in broken:
        _out(
            f"  BROKEN {o.order_id}: {o.final.get('state')} payment {o.final.get('payment_status')}"
        )
    return 1 if broken else 0


def _report_terminate(ended: list[Order], took: float, after: list[Order]) -> int:
    open_ = [o for o in ended if o.final.get("state") not in TERMINAL]
    done = [o for o in after if o.final.get("state") == "COMPLETED"]
    _out(f"terminated orders' states: {dict(Counter(o.final.get('state') for o in ended))}")
    _out(f"all read a terminal state after {took:.1f} s; still open: {len(open_)}")
    _out(
        f"afterwards: {sum(o.answers.get('start') == 202 for o in after)} of 10 new orders "
        f"admitted, {len(done)} completed"
    )
    return 1 if open_ or len(done) < len(after) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["cancel-race", "terminate"])
    parser.add_argument("--orders", type=int, default=None, help="120 / 40 by default")
    args = parser.parse_args()
    orders = args.orders or (120 if args.scenario == "cancel-race" else 40)
    code = asyncio.run(
        _run(
            args.scenario,
            orders,
            os.environ.get("API", "http://127.0.0.1:8000"),
            os.environ.get("API_TOKEN", ""),
            os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
        )
    )
    raise SystemExit(code)


if __name__ == "__main__":
    main()
