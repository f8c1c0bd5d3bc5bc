"""Thin activity wrappers around the order business functions.

Run as local activities by OrderWorkflow (see workers/policies.py for why).
The pool is injected once per worker process.
"""

from __future__ import annotations

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
from workers.errors import business_errors
from workers.order import business


class OrderActivities:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    @activity.defn(name="order_received")
    async def order_received(self, order: NewOrder) -> bool:
        with business_errors():
            return await business.order_received(self.db, order)

    @activity.defn(name="order_validated")
    async def order_validated(self, order: ValidateInput) -> None:
        with business_errors(business.InvalidOrder):
            await business.order_validated(self.db, order)

    @activity.defn(name="payment_charged")
    async def payment_charged(self, charge: ChargeInput) -> ChargeResult:
        with business_errors():
            result = await business.payment_charged(self.db, charge)
        activity.logger.info(
            "payment charged",
            extra={
                "order_id": charge.order_id,
                "payment_id": result.payment_id,
                "amount": result.amount,
                "payment_status": result.status,
            },
        )
        return result

    @activity.defn(name="order_shipped")
    async def order_shipped(self, shipped: ShippedInput) -> None:
        with business_errors():
            await business.order_shipped(self.db, shipped)

    @activity.defn(name="refund_payment")
    async def refund_payment(self, order: OrderRef) -> ChargeResult | None:
        with business_errors():
            result = await business.refund_payment(self.db, order)
        activity.logger.info(
            "payment refund checked",
            extra={
                "order_id": order.order_id,
                "payment_status": result.status if result else "none",
            },
        )
        return result

    @activity.defn(name="address_updated")
    async def address_updated(self, update: PersistAddressInput) -> bool:
        with business_errors():
            return await business.address_updated(self.db, update)

    @activity.defn(name="order_closed")
    async def order_closed(self, close: CloseInput) -> None:
        with business_errors():
            await business.order_closed(self.db, close)
