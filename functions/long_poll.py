"""`GET /orders/{id}/status?wait=S`: hold the answer until the order changes.

Woken by the process's listener (functions/order_changes.py); bounded in number, in
database reads and in time, and let go of as soon as its client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import Request

from functions import metrics
from functions.deps import Resources
from functions.order_changes import RECHECK_SECONDS, TooManyWaits
from functions.order_reads import read_order
from orderflow import store
from orderflow.models import OrderState

# A waiting request notices its client has gone within this long, and lets go.
DISCONNECT_CHECK = 0.5


async def wait_for_change(
    res: Resources,
    order_id: str,
    wait: float,
    changed_from: OrderState | None,
    request: Request | None = None,
) -> store.OrderRow | None:
    """The stored order once it has ended or left ``changed_from``, or after ``wait`` s
    (at once when the process already holds as many waits as it may: a long poll may
    always answer early, and its client simply asks again)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait

    def answers(state: str) -> bool:
        """A state worth answering with: the end, or a move away from ``changed_from``."""
        return OrderState(state).terminal or (
            changed_from is not None and state != changed_from.value
        )

    changes = await res.order_changes()
    try:
        async with changes.watching(order_id, answers) as changed:
            while True:
                changed.clear()
                async with res.wait_reads:
                    stored = await read_order(res, order_id)
                if (stored is not None and answers(stored.state.value)) or (
                    loop.time() >= deadline
                ):
                    return stored
                # Without a proven listener, re-read now and then; with one, only when
                # told (or woken because the listener was lost or came back).
                recheck = RECHECK_SECONDS if not changes.listening else wait
                if await _client_left_before(
                    changed, min(deadline, loop.time() + recheck), request
                ):
                    metrics.STATUS_WAITS_ABANDONED.inc()
                    return stored  # nobody to answer: free the wait now
    except TooManyWaits:
        metrics.STATUS_WAITS_CAPPED.inc()
        return await read_order(res, order_id)


async def _client_left_before(
    changed: asyncio.Event, until: float, request: Request | None
) -> bool:
    """Wait for ``changed`` until the loop time ``until``; True if the client left."""
    loop = asyncio.get_running_loop()
    while not changed.is_set() and loop.time() < until:
        if request is not None and await request.is_disconnected():
            return True
        step = min(until - loop.time(), DISCONNECT_CHECK if request is not None else until)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), max(step, 0))
    return False
