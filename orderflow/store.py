"""Every SQL statement the application runs (schema in ``migrations/``).

Each write is idempotent, so an activity attempt that committed but timed out
before it could report back can simply run again:

- rows are inserted with ``ON CONFLICT DO NOTHING`` on their natural key;
- state changes go through ``_advance``, which only moves an order forward
  along ``order_states.rank`` (a late retry cannot move it back);
- events carry an idempotency key, so a retried write logs its event once.

Each order row carries the workflow run that created it (``run_id``), and every
write a worker makes names its run: a write for an order another run created is
refused (``OrderOfAnotherRun``). An order id reused once Temporal has forgotten its
first run (after retention) can then never charge, refund or close the old order.
``run_id=None`` is a writer outside any run (tools, tests): it is not checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from orderflow.models import OrderState

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class PaymentIdConflict(Exception):
    """The payment_id was already used by another order: retrying cannot fix it."""


class UnknownOrder(Exception):
    """The order row is missing; the step that needs it ran before it was created."""


class OrderOfAnotherRun(Exception):
    """Another workflow run created this order (its id was reused): never write it."""


class OrderEnded(Exception):
    """The order reached a terminal state: nothing may be charged or shipped for it."""


class PaymentVoided(Exception):
    """The order was refunded before it was ever charged: it must never be charged now."""


@dataclass(frozen=True)
class PaymentRow:
    payment_id: str
    order_id: str
    status: str
    amount: int


@dataclass(frozen=True)
class OrderRow:
    id: str
    state: OrderState
    payment_id: str
    address: dict[str, Any]
    items: list[dict[str, Any]]
    reason: str | None
    summary: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    payment_status: str | None = None
    tracking_number: str | None = None


async def _event(conn: Conn, order_id: str, type_: str, key: str, payload: dict[str, Any]) -> None:
    await conn.execute(
        """INSERT INTO events (order_id, type, payload_json, idempotency_key)
           VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING""",
        order_id,
        type_,
        payload,
        key,
    )


async def _claim(conn: Conn, order_id: str, run_id: str | None) -> bool:
    """Lock the order row for this write; False when there is none.

    Raises ``OrderOfAnotherRun`` when the row was created by a run other than
    ``run_id``. An unfinished row from before migration 0003 has no run: the first run
    that writes it claims it (finished ones were fenced by migration 0005).
    """
    owner = await conn.fetchrow(
        "SELECT run_id FROM orders WHERE id = $1 FOR NO KEY UPDATE", order_id
    )
    if owner is None:
        return False
    if run_id is None:
        return True
    if owner["run_id"] is None:
        # An unfinished row from before migration 0003: the first run to write it owns it.
        await conn.execute("UPDATE orders SET run_id = $2 WHERE id = $1", order_id, run_id)
    elif owner["run_id"] != run_id:
        raise OrderOfAnotherRun(
            f"order {order_id} was created by another workflow run: its id was reused"
        )
    return True


async def _advance(
    conn: Conn,
    order_id: str,
    state: OrderState,
    *,
    reason: str | None = None,
    summary: dict[str, Any] | None = None,
) -> bool:
    """Move the order to ``state`` if that is forward; return whether it moved.

    Callers ``_claim`` the row first, which is where a missing order is found.
    """
    # The ranks are compared in correlated subqueries, not a join: when a racing
    # transition commits first, PostgreSQL re-checks this WHERE against the new
    # row, and only subqueries are re-evaluated then -- a joined `cur` row would
    # still be the old state's, and the move would be lost (found by the
    # property test in tests/orderflow/test_store_properties.py).
    row = await conn.fetchrow(
        """UPDATE orders o
              SET state = $2, updated_at = now(),
                  reason = COALESCE($3, o.reason),
                  summary_json = COALESCE($4, o.summary_json)
            WHERE o.id = $1
              AND (SELECT rank FROM order_states WHERE state = $2)
                > (SELECT rank FROM order_states WHERE state = o.state)
        RETURNING o.id""",
        order_id,
        state.value,
        reason,
        summary,
    )
    return row is not None


async def record_order(
    conn: Conn,
    order_id: str,
    payment_id: str,
    address: dict[str, Any],
    items: list[dict[str, Any]],
    *,
    run_id: str | None = None,
) -> bool:
    """Create the order in RECEIVED; return False when this run already created it."""
    async with conn.transaction():
        created = await conn.fetchval(
            """INSERT INTO orders (id, state, payment_id, address_json, items_json, run_id)
               VALUES ($1, 'RECEIVED', $2, $3, $4, $5)
               ON CONFLICT (id) DO NOTHING RETURNING TRUE""",
            order_id,
            payment_id,
            address,
            items,
            run_id,
        )
        if not created:
            await _claim(conn, order_id, run_id)
        await _event(conn, order_id, "order_received", f"{order_id}:received", {"items": items})
    return bool(created)


async def advance_order(
    conn: Conn,
    order_id: str,
    state: OrderState,
    event: str,
    payload: dict[str, Any] | None = None,
    *,
    reason: str | None = None,
    summary: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> bool:
    """Move forward to ``state`` and log ``event`` once, in one transaction.

    The event is written when the order moved, or already was in ``state`` (the
    retry of a transition that committed); never for a move that was refused, so
    the log cannot claim, say, a cancellation of a completed order.
    """
    async with conn.transaction():
        if not await _claim(conn, order_id, run_id):
            raise UnknownOrder(order_id)
        moved = await _advance(conn, order_id, state, reason=reason, summary=summary)
        current = (
            state.value
            if moved
            else await conn.fetchval("SELECT state FROM orders WHERE id = $1", order_id)
        )
        if current == state.value:
            await _event(conn, order_id, event, f"{order_id}:{event}", payload or {})
    return moved


async def charge_payment(
    conn: Conn, order_id: str, payment_id: str, amount: int, *, run_id: str | None = None
) -> PaymentRow:
    """Charge at most once per payment_id (and per order); a repeat returns the first charge."""
    async with conn.transaction():
        if not await _claim(conn, order_id, run_id):
            raise UnknownOrder(order_id)
        # An attempt can outlive its step: one cut by a timeout may still reach this
        # point after the workflow gave up on the charge and compensated. The refund
        # left a void mark under the same row lock; past it, charging is refused.
        if await conn.fetchval(
            "SELECT 1 FROM events WHERE idempotency_key = $1", _void_key(order_id)
        ):
            raise PaymentVoided(f"order {order_id} was refunded before it was charged")
        await _refuse_if_ended(conn, order_id, "charged")
        try:
            await conn.execute(
                """INSERT INTO payments (payment_id, order_id, status, amount)
                   VALUES ($1, $2, 'charged', $3) ON CONFLICT (payment_id) DO NOTHING""",
                payment_id,
                order_id,
                amount,
            )
        except asyncpg.UniqueViolationError as err:  # orders.id UNIQUE: another payment_id
            raise PaymentIdConflict(f"order {order_id} already has a different payment") from err
        row = await conn.fetchrow(
            "SELECT payment_id, order_id, status, amount FROM payments WHERE payment_id = $1",
            payment_id,
        )
        assert row is not None
        if row["order_id"] != order_id:
            raise PaymentIdConflict(f"order {order_id}: its payment id belongs to another order")
        if row["status"] == "charged":
            await _advance(conn, order_id, OrderState.PAYMENT_CHARGED)
            await _event(
                conn,
                order_id,
                "payment_charged",
                f"{order_id}:payment_charged",
                {"payment_id": payment_id, "amount": row["amount"]},
            )
    return PaymentRow(**dict(row))


async def refund_payment(
    conn: Conn, order_id: str, *, run_id: str | None = None
) -> PaymentRow | None:
    """Refund the order's charge if there is one; repeating it changes nothing.

    With no charge yet, the order is marked void instead: a charge attempt still
    in flight (cut by its timeout, the database slow to answer) can no longer
    take money from an order that has been compensated (``charge_payment``).
    """
    async with conn.transaction():
        if not await _claim(conn, order_id, run_id):
            return None
        row = await conn.fetchrow(
            """UPDATE payments SET status = 'refunded', updated_at = now()
                WHERE order_id = $1 AND status = 'charged'
            RETURNING payment_id, order_id, status, amount""",
            order_id,
        )
        if row is not None:
            await _event(
                conn,
                order_id,
                "payment_refunded",
                f"{order_id}:payment_refunded",
                {"payment_id": row["payment_id"], "amount": row["amount"]},
            )
            return PaymentRow(**dict(row))
        existing = await conn.fetchrow(
            "SELECT payment_id, order_id, status, amount FROM payments WHERE order_id = $1",
            order_id,
        )
        if existing is None:
            await _event(conn, order_id, "payment_voided", _void_key(order_id), {})
    return PaymentRow(**dict(existing)) if existing else None


async def _refuse_if_ended(conn: Conn, order_id: str, what: str) -> None:
    # An attempt still in flight when its workflow was ended (terminated, then
    # reconciled) must not take money for, or ship, an order that reads as ended.
    if await conn.fetchval(
        """SELECT s.terminal FROM orders o JOIN order_states s ON s.state = o.state
            WHERE o.id = $1""",
        order_id,
    ):
        raise OrderEnded(f"order {order_id} has ended; it can no longer be {what}")


def _void_key(order_id: str) -> str:
    return f"{order_id}:payment_voided"


async def prepare_shipment(
    conn: Conn, order_id: str, attempt: int, address: dict[str, Any], *, run_id: str | None = None
) -> None:
    async with conn.transaction():
        if not await _claim(conn, order_id, run_id):
            raise UnknownOrder(order_id)
        await conn.execute(
            """INSERT INTO shipments (order_id, attempt, status, address_json)
               VALUES ($1, $2, 'prepared', $3) ON CONFLICT (order_id, attempt) DO NOTHING""",
            order_id,
            attempt,
            address,
        )
        await _advance(conn, order_id, OrderState.SHIPPING)
        await _event(
            conn,
            order_id,
            "package_prepared",
            f"{order_id}:package_prepared:{attempt}",
            {"attempt": attempt},
        )


async def dispatch_shipment(
    conn: Conn,
    order_id: str,
    attempt: int,
    address: dict[str, Any],
    tracking_number: str,
    *,
    run_id: str | None = None,
) -> str:
    """Mark the run dispatched; a repeat keeps the first tracking number and returns it.

    At most one dispatch per order: if an earlier shipping run already dispatched
    (an attempt that committed, then was cut by its deadline, and the run gave up
    after it), that dispatch stands and its tracking number is returned.
    """
    async with conn.transaction():
        # Serialise dispatches of the same order (runs never overlap, but be sure).
        if not await _claim(conn, order_id, run_id):
            raise UnknownOrder(order_id)
        await _refuse_if_ended(conn, order_id, "dispatched")
        earlier = await conn.fetchval(
            """SELECT tracking_number FROM shipments
                WHERE order_id = $1 AND status = 'dispatched' AND attempt <> $2
                ORDER BY attempt LIMIT 1""",
            order_id,
            attempt,
        )
        if earlier is not None:
            return str(earlier)
        tracking = await conn.fetchval(
            """UPDATE shipments
                  SET status = 'dispatched', address_json = $3, updated_at = now(),
                      tracking_number = COALESCE(tracking_number, $4)
                WHERE order_id = $1 AND attempt = $2
            RETURNING tracking_number""",
            order_id,
            attempt,
            address,
            tracking_number,
        )
        if tracking is None:
            raise UnknownOrder(f"{order_id}: no prepared shipment for attempt {attempt}")
        await _event(
            conn,
            order_id,
            "carrier_dispatched",
            f"{order_id}:carrier_dispatched:{attempt}",
            {"attempt": attempt, "tracking_number": tracking, "address": address},
        )
    return str(tracking)


async def update_address(
    conn: Conn, order_id: str, address: dict[str, Any], seq: int, *, run_id: str | None = None
) -> bool:
    """Store the ``seq``-th accepted address unless a later one is stored already;
    False when the order is missing or has ended (nothing stored)."""
    async with conn.transaction():
        if not await _claim(conn, order_id, run_id):
            return False
        row = await conn.fetchrow(
            """SELECT o.address_seq, s.terminal FROM orders o
                 JOIN order_states s ON s.state = o.state WHERE o.id = $1""",
            order_id,
        )
        assert row is not None  # claimed, and so locked, above
        if row["address_seq"] >= seq:
            return True  # this change, or a later one that replaces it, is stored
        if row["terminal"]:
            return False
        await conn.execute(
            """UPDATE orders SET address_json = $2, address_seq = $3, updated_at = now()
                WHERE id = $1""",
            order_id,
            address,
            seq,
        )
        await _event(
            conn,
            order_id,
            "address_updated",
            f"{order_id}:address_updated:{seq}",
            {"address": address},
        )
    return True


def _order(row: asyncpg.Record) -> OrderRow:
    return OrderRow(
        id=row["id"],
        state=OrderState(row["state"]),
        payment_id=row["payment_id"],
        address=row["address_json"],
        items=row["items_json"],
        reason=row["reason"],
        summary=row["summary_json"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        payment_status=row["payment_status"],
        tracking_number=row["tracking_number"],
    )


async def get_order(conn: Conn, order_id: str) -> OrderRow | None:
    """The order with its payment's status and its dispatch's tracking number, if any."""
    row = await conn.fetchrow(
        """SELECT o.id, o.state, o.payment_id, o.address_json, o.items_json, o.reason,
                  o.summary_json, o.created_at, o.updated_at,
                  (SELECT p.status FROM payments p WHERE p.order_id = o.id) AS payment_status,
                  (SELECT s.tracking_number FROM shipments s
                    WHERE s.order_id = o.id AND s.status = 'dispatched'
                    ORDER BY s.attempt LIMIT 1) AS tracking_number
             FROM orders o WHERE o.id = $1""",
        order_id,
    )
    return _order(row) if row else None


async def get_payment(conn: Conn, order_id: str) -> PaymentRow | None:
    row = await conn.fetchrow(
        "SELECT payment_id, order_id, status, amount FROM payments WHERE order_id = $1", order_id
    )
    return PaymentRow(**dict(row)) if row else None


async def list_events(conn: Conn, order_id: str, limit: int = 500) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, type, payload_json, ts FROM events
            WHERE order_id = $1 ORDER BY id LIMIT $2""",
        order_id,
        limit,
    )
    return [
        {"id": r["id"], "type": r["type"], "payload": r["payload_json"], "ts": r["ts"]}
        for r in rows
    ]


async def ping(conn: Conn) -> None:
    await conn.fetchval("SELECT 1")


@dataclass(frozen=True)
class OpenOrders:
    state: OrderState
    count: int
    oldest_update_age_seconds: float


async def open_orders(conn: Conn) -> list[OpenOrders]:
    """Orders not yet in a terminal state, per state, with the age of the stalest one."""
    rows = await conn.fetch(
        """SELECT o.state, count(*) AS n,
                  EXTRACT(EPOCH FROM now() - min(o.updated_at))::float8 AS oldest
             FROM orders o JOIN order_states s ON s.state = o.state
            WHERE NOT s.terminal
         GROUP BY o.state"""
    )
    return [OpenOrders(OrderState(r["state"]), r["n"], r["oldest"]) for r in rows]


@dataclass(frozen=True)
class AdmissionCounts:
    """What the API's admission control reads, a few times a second per process."""

    active: int  # orders in one of the active states
    ended: int  # orders that reached a terminal state within the window
    stored: list[str]  # which of the order ids asked about the database has


async def admission_counts(
    conn: Conn,
    active_states: Iterable[OrderState],
    window_seconds: float,
    order_ids: list[str],
    active_within_seconds: float = 120.0,
) -> AdmissionCounts:
    """The active orders (written in the last ``active_within_seconds``), the orders
    ended in the last ``window_seconds`` (the stack's completion rate) and which of
    ``order_ids`` are stored, in one round trip."""
    # The terminal states are spelled out, not a parameter, so that the partial index
    # orders_ended_at_idx (migrations/0004) provably applies.
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM orders WHERE state = ANY($1::text[])
                     AND updated_at > now() - make_interval(secs => $4)) AS active,
                  (SELECT count(*) FROM orders
                    WHERE state IN ('COMPLETED', 'CANCELLED', 'FAILED')
                      AND updated_at > now() - make_interval(secs => $2)) AS ended,
                  ARRAY(SELECT id FROM orders WHERE id = ANY($3::text[])) AS stored""",
        [s.value for s in active_states],
        window_seconds,
        order_ids,
        active_within_seconds,
    )
    assert row is not None  # a SELECT without FROM always has its one row
    return AdmissionCounts(row["active"], row["ended"], list(row["stored"]))


# --- orders Temporal ended (workers/reconciler.py) ---------------------------------


async def unfinished(conn: Conn, order_ids: list[str]) -> list[str]:
    """Which of ``order_ids`` are stored and not yet in a terminal state."""
    rows = await conn.fetch(
        """SELECT o.id FROM orders o JOIN order_states s ON s.state = o.state
            WHERE o.id = ANY($1::text[]) AND NOT s.terminal""",
        order_ids,
    )
    return [r["id"] for r in rows]


async def quiet_unfinished(conn: Conn, quiet_seconds: float, limit: int) -> list[str]:
    """Unfinished orders not written for ``quiet_seconds``, the quietest first."""
    rows = await conn.fetch(
        """SELECT o.id FROM orders o JOIN order_states s ON s.state = o.state
            WHERE NOT s.terminal AND o.updated_at < now() - make_interval(secs => $1)
         ORDER BY o.updated_at LIMIT $2""",
        quiet_seconds,
        limit,
    )
    return [r["id"] for r in rows]


async def close_ended(conn: Conn, order_id: str, how: str, reason: str) -> bool:
    """Close an unfinished order whose workflow Temporal ended (``how``: terminated,
    timed out, deleted, ...) as TERMINATED; return whether it was closed now.

    A charge is neither refunded nor kept silently: the order's reason says it is held
    for a refund decision, and a ``payment_needs_decision`` event records it.
    """
    async with conn.transaction():
        if not await _claim(conn, order_id, None):
            return False
        charged = await conn.fetchval(
            "SELECT payment_id FROM payments WHERE order_id = $1 AND status = 'charged'",
            order_id,
        )
        said = f"ended in Temporal ({how}): {reason}"
        if charged:
            said += "; the payment stays charged until someone decides on a refund"
        if not await _advance(conn, order_id, OrderState.TERMINATED, reason=said):
            return False
        await _event(
            conn,
            order_id,
            "order_terminated",
            f"{order_id}:order_terminated",
            {"how": how, "reason": reason},
        )
        if charged:
            await _event(
                conn,
                order_id,
                "payment_needs_decision",
                f"{order_id}:payment_needs_decision",
                {"payment_id": charged},
            )
    return True


async def payments_awaiting_decision(conn: Conn) -> int:
    """Charged payments of orders Temporal ended, that nobody has refunded yet."""
    count = await conn.fetchval(
        """SELECT count(*) FROM orders o JOIN payments p ON p.order_id = o.id
            WHERE o.state = 'TERMINATED' AND p.status = 'charged'"""
    )
    return int(count or 0)
