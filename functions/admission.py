"""Admission control: refuse new orders early, past capacity, instead of queueing them.

Past what the stack can process, a start that is accepted only joins a queue
inside Temporal: every order then finishes late, and start requests themselves
wait for seconds. Refusing the excess at once (503 with Retry-After) keeps the
admitted orders inside their 15 s. Two measured signals decide, each a setting:

* the promise: by Little's law (orders in progress = completion rate x time each
  spends), the active orders over the stack's measured completion rate is how long a
  new order would spend being processed, on average, on any host and at any scale. A
  start is refused once that passes ``SHED_QUEUE_SECONDS`` (4.5 s: what kept every
  admitted order inside the 15 s promise at twice the knee), never while at most
  ``SHED_MIN_ACTIVE_ORDERS`` are active (an idle stack has no rate to measure yet).
  A measured limit, not a fixed one, because a fixed one means a different queue
  on every host. Active means stored and not ended, orders waiting for a human
  approval not counted (they cost nothing while they wait), nor orders not written for
  ``ACTIVE_WITHIN_SECONDS`` (waiting out an outage on the server's retries, or ended in
  Temporal and not yet reconciled: either way not load on the stack), read from PostgreSQL at
  most every ``REFRESH_SECONDS`` per API process, so every replica sees the same
  numbers; plus the orders this process started that are not stored yet: they wait
  in Temporal for their first workflow task, where past capacity the excess piles
  up unseen by the database; and the starts it admitted that Temporal has not
  answered yet, so that starts admitted together cannot pass the limit together;
* Temporal's start latency: a moving average of this process's recent starts over
  about the last second (``LATENCY_TIME_CONSTANT_SECONDS``), forgotten after
  ``LATENCY_MEMORY_SECONDS`` without a start, so that a shed period lets a probe
  through and notices when Temporal has caught up. It refuses only once
  ``LATENCY_MIN_SAMPLES`` starts back it: one slow start after a quiet spell is no
  reason for seconds of refusals.

Only starts are refused: approvals, cancels and status reads of admitted orders
always go through. Both the refusals and the signals are metrics (functions/metrics.py).
The history of both signals: docs/decisions/0006-admission-control.md.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException

from functions import metrics
from functions.deps import Resources, SettingsDep
from orderflow import store
from orderflow.models import OrderState
from orderflow.settings import Settings

ACTIVE_STATES = (
    OrderState.RECEIVED,
    OrderState.VALIDATED,
    OrderState.PAYMENT_CHARGED,
    OrderState.SHIPPING,
)
# A count a quarter of a second old is fresh enough: at 20 orders/s it is off by ~5,
# and it costs one statement (three indexed reads) per API process four times a second at most.
REFRESH_SECONDS = 0.25
# An order this process started and the database has not seen after this long is
# stuck for another reason (an outage); it no longer counts as load.
UNSTORED_MEMORY_SECONDS = 30.0
COUNT_TIMEOUT_SECONDS = 0.2
# The completion rate is the orders ended over this many seconds: long enough that
# at a few orders/s it counts more than a handful, short enough to follow a slowdown.
RATE_WINDOW_SECONDS = 5.0
# The moving average of start latency weighs starts by time, not by count: a start
# weighs 1 - exp(-dt / tau), dt the time since the previous one, so the average covers
# about the last second at any rate, and two slow starts in a row (a pause in the
# server) among many fast ones do not refuse the next orders.
LATENCY_TIME_CONSTANT_SECONDS = 1.0
LATENCY_MEMORY_SECONDS = 2.0
LATENCY_MIN_SAMPLES = 3
# An active order not written for this long is not using the stack (see above).
ACTIVE_WITHIN_SECONDS = 120.0


class Admission:
    def __init__(self, settings: Settings) -> None:
        self._queue_seconds = settings.shed_queue_seconds
        self._min_active = settings.shed_min_active_orders
        self._max_latency = settings.shed_max_start_latency_seconds
        self._retry_after = settings.shed_retry_after_seconds
        self._active = 0
        self._limit = self._min_active
        self._active_read_at = float("-inf")
        self._started: OrderedDict[str, float] = OrderedDict()  # id -> when, not yet stored
        self._reserved = 0  # admitted, their start to Temporal not answered yet
        self._refresh: asyncio.Task[None] | None = None
        self._latency = 0.0
        self._latency_seen_at = float("-inf")
        self._latency_samples = 0

    async def admit(self, res: Resources) -> None:
        """Return if a new order may start now, holding its place until ``started`` or
        ``release``; else raise the 503 to answer."""
        if self._queue_seconds:
            await self._fresh_active_count(res)
            if self._active > self._limit:
                self._refuse(
                    "active_orders",
                    f"{self._active} orders are being processed (limit {self._limit}: a new "
                    f"one would take over {self._queue_seconds:g} s on average)",
                )
        self._check_latency()
        if self._queue_seconds:
            # Counted at once, not from the next read or once Temporal answers: starts
            # admitted together cannot pass the limit together.
            self._reserved += 1
            self._active += 1

    def _check_latency(self) -> None:
        if (
            self._max_latency
            and self._latency_samples >= LATENCY_MIN_SAMPLES
            and self.start_latency() > self._max_latency
        ):
            self._refuse(
                "start_latency",
                f"Temporal takes {self.start_latency():.1f} s to accept an order "
                f"(limit {self._max_latency:g} s)",
            )

    def started(self, order_id: str) -> None:
        """An admitted order Temporal accepted: load until the database has it."""
        # Only the active-order signal reads (and prunes) this record: without it, keep none.
        if self._queue_seconds:
            self._reserved -= 1
            self._started[order_id] = time.monotonic()

    def release(self) -> None:
        """An admitted order that was not started after all (a 409, Temporal down)."""
        if self._queue_seconds:
            self._reserved -= 1
            self._active -= 1

    def observe_start(self, seconds: float) -> None:
        """Feed the duration of one start request to Temporal."""
        now = time.monotonic()
        since = now - self._latency_seen_at
        if since > LATENCY_MEMORY_SECONDS:
            self._latency = seconds
            self._latency_samples = 1
        else:
            self._latency_samples += 1
            weight = 1.0 - math.exp(-since / LATENCY_TIME_CONSTANT_SECONDS)
            self._latency += weight * (seconds - self._latency)
        self._latency_seen_at = now
        metrics.ADMISSION_START_LATENCY.set(self._latency)

    def start_latency(self) -> float:
        if time.monotonic() - self._latency_seen_at > LATENCY_MEMORY_SECONDS:
            return 0.0
        return self._latency

    def _refuse(self, reason: str, why: str) -> None:
        metrics.ORDERS_SHED.labels(reason=reason).inc()
        raise HTTPException(
            503,
            f"overloaded: {why}; not started, retry in {self._retry_after} s",
            headers={"Retry-After": str(self._retry_after)},
        )

    async def _fresh_active_count(self, res: Resources) -> None:
        if time.monotonic() - self._active_read_at < REFRESH_SECONDS:
            return
        if self._refresh is None or self._refresh.done():
            # One read for all the requests that find the count stale at once.
            self._refresh = asyncio.create_task(self._read_active(res))
        await asyncio.shield(self._refresh)

    async def _read_active(self, res: Resources) -> None:
        forget_before = time.monotonic() - UNSTORED_MEMORY_SECONDS
        while self._started and next(iter(self._started.values())) < forget_before:
            self._started.popitem(last=False)
        try:
            pool = await res.db()
            async with pool.acquire(timeout=COUNT_TIMEOUT_SECONDS) as conn:
                counts = await asyncio.wait_for(
                    store.admission_counts(
                        conn,
                        ACTIVE_STATES,
                        RATE_WINDOW_SECONDS,
                        list(self._started),
                        ACTIVE_WITHIN_SECONDS,
                    ),
                    COUNT_TIMEOUT_SECONDS,
                )
            for order_id in counts.stored:
                self._started.pop(order_id, None)
            self._active = counts.active + len(self._started) + self._reserved
            rate = counts.ended / RATE_WINDOW_SECONDS
            self._limit = self.limit_for(ended_per_second=rate)
            metrics.ADMISSION_COMPLETION_RATE.set(rate)
            metrics.ADMISSION_EXPECTED_SECONDS.set(self._active / rate if rate else 0.0)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            # The database cannot say: keep the last count; starts go on to Temporal,
            # which holds the order until the workers can store it.
            pass
        self._active_read_at = time.monotonic()
        metrics.ADMISSION_ACTIVE_ORDERS.set(self._active)
        metrics.ADMISSION_ACTIVE_LIMIT.set(self._limit)

    def limit_for(self, ended_per_second: float) -> int:
        """The active orders a new one may wait behind and still be processed within the
        budget, on average (Little's law), at the measured completion rate."""
        return max(self._min_active, int(ended_per_second * self._queue_seconds))

    def active_limit(self) -> int:
        """The active orders admitted at most, as last measured."""
        return self._limit


_admissions: dict[int, Admission] = {}


async def current_admission(settings: SettingsDep) -> Admission:
    """The process's one Admission (one per settings object, for tests that swap them)."""
    admission = _admissions.get(id(settings))
    if admission is None:
        admission = _admissions[id(settings)] = Admission(settings)
    return admission


AdmissionDep = Annotated[Admission, Depends(current_admission)]
