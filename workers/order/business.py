"""The order's business functions: each calls flaky_call() first, then does its
database work through ``orderflow.store`` (idempotent, see there)."""

from __future__ import annotations

import asyncpg

from orderflow import store
from orderflow.models import (
    ChargeInput,
    ChargeResult,
    CloseInput,
    Item,
    NewOrder,
    OrderRef,
    OrderState,
    PersistAddressInput,
    ShippedInput,
    ValidateInput,
)
from workers.flaky import flaky_call

# Demo catalogue: every unit costs the same. Amounts are integer cents.
UNIT_PRICE_CENTS = 1999
# Business rule checked at validation (the API already bounds each line).
MAX_UNITS_PER_ORDER = 100


class InvalidOrder(Exception):
    """The order breaks a business rule; retrying cannot help."""


def order_amount(items: list[Item]) -> int:
    return sum(item.qty for item in items) * UNIT_PRICE_CENTS


async def order_received(db: asyncpg.Pool, order: NewOrder) -> bool:
    await flaky_call()
    async with db.acquire() as conn:
        return await store.record_order(
            conn,
            order.order_id,
            order.payment_id,
            order.address.model_dump(mode="json"),
            [item.model_dump(mode="json") for item in order.items],
            run_id=order.run_id,
        )


async def order_validated(db: asyncpg.Pool, order: ValidateInput) -> None:
    await flaky_call()
    units = sum(item.qty for item in order.items)
    if units > MAX_UNITS_PER_ORDER:
        raise InvalidOrder(f"{units} units ordered; at most {MAX_UNITS_PER_ORDER} per order")
    skus = [item.sku for item in order.items]
    if len(set(skus)) != len(skus):
        raise InvalidOrder("the same sku appears on more than one line")
    async with db.acquire() as conn:
        # A valid order goes straight to manual review: stored as AWAITING_APPROVAL,
        # so the status read from the database shows where it waits.
        await store.advance_order(
            conn,
            order.order_id,
            OrderState.AWAITING_APPROVAL,
            "order_validated",
            {"units": units},
            run_id=order.run_id,
        )


async def payment_charged(db: asyncpg.Pool, charge: ChargeInput) -> ChargeResult:
    await flaky_call()
    amount = order_amount(charge.items)
    async with db.acquire() as conn:
        row = await store.charge_payment(
            conn, charge.order_id, charge.payment_id, amount, run_id=charge.run_id
        )
    return ChargeResult(payment_id=row.payment_id, amount=row.amount, status=row.status)


async def order_shipped(db: asyncpg.Pool, shipped: ShippedInput) -> None:
    await flaky_call()
    async with db.acquire() as conn:
        await store.advance_order(
            conn,
            shipped.order_id,
            OrderState.COMPLETED,
            "order_shipped",
            {"tracking_number": shipped.summary.tracking_number},
            summary=shipped.summary.model_dump(mode="json"),
            run_id=shipped.run_id,
        )


async def refund_payment(db: asyncpg.Pool, order: OrderRef) -> ChargeResult | None:
    await flaky_call()
    async with db.acquire() as conn:
        row = await store.refund_payment(conn, order.order_id, run_id=order.run_id)
    if row is None:
        return None
    return ChargeResult(payment_id=row.payment_id, amount=row.amount, status=row.status)


async def address_updated(db: asyncpg.Pool, update: PersistAddressInput) -> bool:
    await flaky_call()
    async with db.acquire() as conn:
        return await store.update_address(
            conn,
            update.order_id,
            update.address.model_dump(mode="json"),
            update.seq,
            run_id=update.run_id,
        )


async def order_closed(db: asyncpg.Pool, close: CloseInput) -> None:
    await flaky_call()
    order = close.order
    async with db.acquire() as conn:
        # The order may end before it was ever recorded (cancelled while receiving).
        await store.record_order(
            conn,
            order.order_id,
            order.payment_id,
            order.address.model_dump(mode="json"),
            [item.model_dump(mode="json") for item in order.items],
            run_id=order.run_id,
        )
        await store.advance_order(
            conn,
            order.order_id,
            close.state,
            f"order_{close.state.value.lower()}",
            {"reason": close.reason},
            reason=close.reason,
            summary=close.summary.model_dump(mode="json"),
            run_id=order.run_id,
        )
