"""Property test of the persistence layer against real PostgreSQL.

Hypothesis generates histories of the writes the workers make -- charges (also
retried with another payment_id), refunds, repeated order records and state
transitions -- and runs them in batches whose members race each other on
separate connections, as concurrent activity attempts would. After every batch:

* at most one payment row per order, and it is the first payment_id charged;
* a charge and its event are all-or-nothing, and so is a refund;
* a refunded payment never becomes charged again, and an order refunded before
  any charge is never charged;
* the order's state never moves backwards (order_states.rank), and ends at the
  highest state asked for.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderflow import store
from orderflow.models import OrderState

ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
ITEMS = [{"sku": "ABC", "qty": 1}]
RANK = {
    OrderState.RECEIVED: 10,
    OrderState.VALIDATED: 20,
    OrderState.AWAITING_APPROVAL: 30,
    OrderState.PAYMENT_CHARGED: 40,
    OrderState.SHIPPING: 50,
    OrderState.COMPLETED: 100,
    OrderState.CANCELLED: 100,
    OrderState.FAILED: 100,
    OrderState.TERMINATED: 100,
}


@dataclass(frozen=True)
class Op:
    kind: str  # charge | refund | advance | record
    payment: int = 0  # which payment_id a charge carries (1 = a conflicting one)
    state: OrderState = OrderState.RECEIVED


ops = st.one_of(
    st.builds(Op, kind=st.just("charge"), payment=st.sampled_from([0, 0, 0, 1])),
    st.builds(Op, kind=st.just("refund")),
    st.builds(Op, kind=st.just("record")),
    # RECEIVED is where an order starts (record_order), never a transition target.
    st.builds(
        Op,
        kind=st.just("advance"),
        state=st.sampled_from([s for s in OrderState if s is not OrderState.RECEIVED]),
    ),
)
histories = st.lists(st.lists(ops, min_size=1, max_size=4), min_size=1, max_size=8)


async def apply(db: asyncpg.Pool, order_id: str, op: Op) -> str | None:
    """Run one write; return the payment_id it charged, if it charged."""
    async with db.acquire() as conn:
        if op.kind == "charge":
            try:
                row = await store.charge_payment(
                    conn, order_id, f"pay-{order_id}-{op.payment}", 1999
                )
            except (store.PaymentIdConflict, store.PaymentVoided, store.OrderEnded):
                return None
            return row.payment_id
        if op.kind == "refund":
            await store.refund_payment(conn, order_id)
        elif op.kind == "record":
            await store.record_order(conn, order_id, f"pay-{order_id}-0", ADDRESS, ITEMS)
        else:
            await store.advance_order(conn, order_id, op.state, f"order_{op.state.value.lower()}")
    return None


async def snapshot(db: asyncpg.Pool, order_id: str) -> dict[str, object]:
    async with db.acquire() as conn:
        payments = await conn.fetch(
            "SELECT payment_id, status FROM payments WHERE order_id = $1", order_id
        )
        events = await conn.fetch(
            "SELECT type, count(*) AS n FROM events WHERE order_id = $1 GROUP BY type", order_id
        )
        state = await conn.fetchval("SELECT state FROM orders WHERE id = $1", order_id)
    return {
        "payments": [(p["payment_id"], p["status"]) for p in payments],
        "events": {e["type"]: e["n"] for e in events},
        "state": OrderState(state),
    }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories)
async def test_any_interleaving_charges_once_and_never_goes_back(
    db: asyncpg.Pool, history: list[list[Op]]
) -> None:
    order_id = f"prop-{uuid.uuid4().hex[:12]}"
    async with db.acquire() as conn:
        await store.record_order(conn, order_id, f"pay-{order_id}-0", ADDRESS, ITEMS)
    first_payment: str | None = None
    highest = RANK[OrderState.RECEIVED]
    terminal_asked: set[OrderState] = set()
    last_rank = highest
    was_refunded = False
    for batch in history:
        charged = await asyncio.gather(*(apply(db, order_id, op) for op in batch))
        for op, payment_id in zip(batch, charged, strict=True):
            if op.kind == "advance":
                highest = max(highest, RANK[op.state])
                if op.state.terminal:
                    terminal_asked.add(op.state)
            if payment_id is not None:
                first_payment = first_payment or payment_id
                assert payment_id == first_payment, "a second payment_id was charged"
                highest = max(highest, RANK[OrderState.PAYMENT_CHARGED])

        now = await snapshot(db, order_id)
        payments = now["payments"]
        events = now["events"]
        state = now["state"]
        assert isinstance(payments, list) and isinstance(events, dict)
        assert isinstance(state, OrderState)

        assert len(payments) <= 1
        if payments:
            assert payments[0][0] == first_payment
        assert events.get("payment_charged", 0) == len(payments)
        # A refund that found no charge voids the order: no charge may follow it.
        if events.get("payment_voided"):
            assert not payments, "an order was charged after its refund voided it"
        refunded = bool(payments) and payments[0][1] == "refunded"
        assert events.get("payment_refunded", 0) == int(refunded)
        assert not (was_refunded and not refunded), "a refunded payment was charged again"
        was_refunded = refunded

        assert RANK[state] >= last_rank, f"state moved back to {state}"
        last_rank = RANK[state]
        assert RANK[state] == highest
        if terminal_asked:
            assert state in terminal_asked
        assert all(n == 1 for n in events.values()), f"an event was written twice: {events}"
