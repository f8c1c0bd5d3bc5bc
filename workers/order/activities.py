"""Thin activity wrappers around the order business functions.

Run as local activities by OrderWorkflow, several attempts a call
(workers/attempts.py; workers/policies.py says why). The pool is injected once
per worker process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from temporalio import activity

from orderflow.models import (
    ChargeInput,
    ChargeResult,
    CloseInput,
    NewOrder,
    OrderRef,
    PersistAddressInput,
    ShippedInput,
    ValidateInput,
)
from workers import attempts
from workers.attempts import Burst, Outcome
from workers.order import business


class OrderActivities:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    def all(self) -> list[Callable[..., Any]]:
        """Every step the order worker runs, for its Worker."""
        return [
            self.order_received,
            self.order_validated,
            self.payment_charged,
            self.order_shipped,
            self.refund_payment,
            self.address_updated,
            self.order_closed,
        ]

    @activity.defn(name="order_received")
    async def order_received(self, burst: Burst[NewOrder]) -> Outcome[bool]:
        return await attempts.run(burst, lambda order: business.order_received(self.db, order))

    @activity.defn(name="order_validated")
    async def order_validated(self, burst: Burst[ValidateInput]) -> Outcome[None]:
        return await attempts.run(
            burst, lambda order: business.order_validated(self.db, order), business.InvalidOrder
        )

    @activity.defn(name="payment_charged")
    async def payment_charged(self, burst: Burst[ChargeInput]) -> Outcome[ChargeResult]:
        outcome = await attempts.run(
            burst, lambda charge: business.payment_charged(self.db, charge)
        )
        if outcome.value is not None:
            # Not the payment id: it is the customer's (personal data, like the address);
            # the order id finds the payment in PostgreSQL.
            activity.logger.info(
                "payment charged",
                extra={
                    "order_id": burst.arg.order_id,
                    "amount": outcome.value.amount,
                    "payment_status": outcome.value.status,
                },
            )
        return outcome

    @activity.defn(name="order_shipped")
    async def order_shipped(self, burst: Burst[ShippedInput]) -> Outcome[None]:
        return await attempts.run(burst, lambda shipped: business.order_shipped(self.db, shipped))

    @activity.defn(name="refund_payment")
    async def refund_payment(self, burst: Burst[OrderRef]) -> Outcome[ChargeResult | None]:
        outcome = await attempts.run(burst, lambda order: business.refund_payment(self.db, order))
        if outcome.succeeded:
            activity.logger.info(
                "payment refund checked",
                extra={
                    "order_id": burst.arg.order_id,
                    "payment_status": outcome.value.status if outcome.value else "none",
                },
            )
        return outcome

    @activity.defn(name="address_updated")
    async def address_updated(self, burst: Burst[PersistAddressInput]) -> Outcome[bool]:
        return await attempts.run(burst, lambda update: business.address_updated(self.db, update))

    @activity.defn(name="order_closed")
    async def order_closed(self, burst: Burst[CloseInput]) -> Outcome[None]:
        return await attempts.run(burst, lambda close: business.order_closed(self.db, close))
