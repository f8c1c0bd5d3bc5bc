"""The order protocol as a Hypothesis state machine, and the invariants it checks.

Each example is one order on the real workflows. The machine decides, step by step,
what happens next: a customer message through the API's own handlers (approve,
cancel, update-address), a step of the order let through or broken at its gate, a
worker restarted. Requests run concurrently with everything else, as they do for
real clients; the machine only waits briefly for each answer. At the end every gate
opens, the order runs to its end, and every answer the API gave is held against what
the workflow, the database and ``GET /status`` then say (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fastapi import HTTPException, Request, Response
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError

from functions import order_messages, order_reads
from functions.routes import orders as routes
from orderflow import store
from orderflow.models import (
    Address,
    AddressUpdate,
    CancelRequest,
    Item,
    OrderInput,
    OrderResult,
    OrderState,
    OrderStatus,
    UpdateAccepted,
)
from tests.model.gates import Mode
from tests.model.runtime import ModelRuntime, settle

ORIGINAL = Address(line1="1 Main St", city="Berlin", postal_code="10115", country="DE")
# Long enough that the review ends only when the machine says so; the short one runs
# out while the machine acts, racing approvals and cancellations.
REVIEW_SECONDS = {"long": 120.0, "short": 1.5}
# Gates the machine may break for good: a business rule, and a carrier that refuses.
BREAKABLE = ("order_validated", "carrier_dispatched")
# How long a rule waits for its request's answer before the machine moves on.
ANSWER_GRACE = 0.3


@dataclass
class Sent:
    """One customer request and, once it came, the API's answer."""

    kind: str
    sent_at: float
    future: Future[tuple[int, Any]]
    address: Address | None = None
    reason: str | None = None
    answered_at: float | None = None
    code: int = 0
    detail: Any = None

    def collect(self, timeout: float) -> None:
        self.code, self.detail = self.future.result(timeout)

    @property
    def accepted(self) -> bool:
        return self.code == 202

    @property
    def may_have_been_accepted(self) -> bool:
        """A 503 that says the worker did not answer: it may be applied later."""
        return self.code == 503 and "did not answer" in str(self.detail)


async def _answer(send: Any) -> tuple[int, Any]:
    try:
        accepted: UpdateAccepted = await send
    except HTTPException as err:
        return err.status_code, err.detail
    return 202, accepted


@dataclass
class Ending:
    """What the order ended as, in each place that says so."""

    result: OrderResult | None
    terminated_at: float | None  # when an operator ended it, if one did
    row: store.OrderRow
    status: Any
    events: list[dict[str, Any]]
    payment: store.PaymentRow | None
    shipped_to: dict[str, Any] | None = field(default=None)


class OrderProtocol(RuleBasedStateMachine):
    runtime: ClassVar[ModelRuntime]

    # --- the order and what customers do -------------------------------------------

    @initialize(review=st.sampled_from(sorted(REVIEW_SECONDS)))
    def start(self, review: str) -> None:
        self.order_id = f"m-{uuid.uuid4().hex[:12]}"
        self.sent: list[Sent] = []
        self.terminated_at: float | None = None
        rt = self.runtime
        self.handle = rt.call(
            rt.client.start_workflow(
                "OrderWorkflow",
                OrderInput(
                    order_id=self.order_id,
                    payment_id=f"pay-{self.order_id}",
                    address=ORIGINAL,
                    items=[Item(sku="ABC", qty=1)],
                    review_timeout_seconds=REVIEW_SECONDS[review],
                    shipping_max_attempts=2,
                    shipping_task_queue=rt.shipping_queue,
                ),
                id=order_reads.workflow_id(self.order_id),
                task_queue=rt.order_queue,
                result_type=OrderResult,
            )
        )
        self._settle()

    @rule()
    def approve(self) -> None:
        self._send("approve", order_messages.send_approve(self.runtime.api, self.order_id))

    @rule()
    def cancel(self) -> None:
        reason = f"model cancel {len(self.sent)}"
        self._send("cancel", self._update("cancel", CancelRequest(reason=reason)), reason=reason)

    @rule()
    def update_address(self) -> None:
        address = ORIGINAL.model_copy(update={"city": f"City {len(self.sent)}"})
        self._send(
            "update_address",
            self._update("update_address", AddressUpdate(address=address)),
            address=address,
        )

    # --- what happens inside ------------------------------------------------------------

    # Every rule is always enabled, whatever the order is doing: Hypothesis replays and
    # shrinks by the choices it made, so what a rule may do cannot depend on timing.
    # A rule that finds nothing to act on does nothing.

    @rule()
    def advance(self) -> None:
        """Let the order's own step through (whichever it is held at)."""
        self._set(lambda g: g[1] != "address_updated", "open")

    @rule()
    def store_an_address(self) -> None:
        """Let the oldest held address change be stored."""
        self._set(lambda g: g[1] == "address_updated", "open", first_only=True)

    @rule()
    def break_the_step(self) -> None:
        """Fail the step for good, if it can fail so: validation, or the carrier."""
        self._set(lambda g: g[1] in BREAKABLE, "broken")

    def _set(self, which: Any, mode: Mode, first_only: bool = False) -> None:
        gates = self.runtime.gates
        chosen = [g for g in gates.held(self.order_id) if which(g)]
        for gate in chosen[:1] if first_only else chosen:
            self.runtime.on_loop(lambda gate=gate: gates.set(gate, mode))  # type: ignore[misc]
        self._settle()

    @precondition(lambda self: self.terminated_at is None)
    @rule()
    def terminate(self) -> None:
        """What an operator does from Temporal's UI: end the order's workflow."""
        with contextlib.suppress(RPCError):  # it had ended already
            self.runtime.call(self.handle.terminate("model: ended by an operator"))
            self.terminated_at = time.monotonic()
        self._settle()

    @rule(kind=st.sampled_from(["order", "shipping"]))
    def restart_worker(self, kind: str) -> None:
        self.runtime.restart_worker(kind)
        self._settle()

    # --- helpers -------------------------------------------------------------------------

    def _update(self, name: str, arg: Any) -> Any:
        rt = self.runtime
        return order_messages.send_update(
            rt.api, rt.settings.update_timeout_seconds, self.order_id, name, arg
        )

    def _send(self, kind: str, send: Any, **facts: Any) -> None:
        sent = Sent(kind, time.monotonic(), self.runtime.send(_answer(send)), **facts)
        sent.future.add_done_callback(lambda _: setattr(sent, "answered_at", time.monotonic()))
        self.sent.append(sent)
        with contextlib.suppress(TimeoutError):  # still in flight: collected at the end
            sent.collect(ANSWER_GRACE)
        self._settle()

    def wait_until_held(self, step: str, within: float) -> bool:
        """Wait up to ``within`` s for an attempt to wait at ``step``'s gate (for tests
        that replay a sequence whose timing the machine left to chance)."""
        deadline = time.monotonic() + within
        while not any(g[1] == step for g in self.runtime.gates.held(self.order_id)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _settle(self) -> None:
        """Let the order run until the steps it is held at stop changing."""
        gates = self.runtime.gates

        async def held() -> object:
            return gates.held(self.order_id)

        self.runtime.call(settle(held, quiet=0.15, within=1.0))

    # --- the end, and what must hold -------------------------------------------------------

    def teardown(self) -> None:
        if not hasattr(self, "order_id"):
            return
        started = time.monotonic()
        ending = self.runtime.call(self._run_to_end(), timeout=120)
        for sent in self.sent:
            sent.collect(30)
        print(
            f"model: {self.order_id} ended {ending.row.state} in {time.monotonic() - started:.1f} s"
        )
        check(self.sent, ending)

    async def _run_to_end(self) -> Ending:
        rt = self.runtime
        rt.gates.drain(self.order_id)
        with contextlib.suppress(RPCError):
            await self.handle.signal("approve")  # ends a review that still waits
        result: OrderResult | None = None
        terminated = False
        try:
            result = await asyncio.wait_for(self.handle.result(), 90)
        except WorkflowFailureError:
            terminated = True
        # An order Temporal ended is closed by the reconciler within a sweep or two.
        for _ in range(100 if terminated else 1):
            async with rt.db.acquire() as conn:
                row = await store.get_order(conn, self.order_id)
                events = await store.list_events(conn, self.order_id)
                payment = await store.get_payment(conn, self.order_id)
            if row is not None and row.state.terminal:
                break
            await asyncio.sleep(0.1)
        assert row is not None, "the order ended without a stored row"
        # A plain read (no wait): the request is never asked whether its client left.
        request = Request({"type": "http", "method": "GET", "headers": []})
        answer = await routes.order_status(self.order_id, rt.api, routes.StatusQuery(), request)
        status = (
            OrderStatus.model_validate_json(bytes(answer.body))
            if isinstance(answer, Response)
            else answer
        )
        dispatched = [e for e in events if e["type"] == "carrier_dispatched"]
        return Ending(
            result=result,
            terminated_at=self.terminated_at if terminated else None,
            row=row,
            status=status,
            events=events,
            payment=payment,
            shipped_to=dispatched[0]["payload"]["address"] if dispatched else None,
        )


# --- the invariants (docs/protocol.md names each) ----------------------------------------


def check(sent: list[Sent], end: Ending) -> None:
    """Every invariant of the protocol, for one order's answers and its ending."""
    ended_as(end)
    cancels_honoured(sent, end)
    address_is_the_last_accepted(sent, end)
    money_moves_once(end)


def ended_as(end: Ending) -> None:
    """P1: the workflow, the database and GET /status agree on how the order ended;
    P5: one Temporal ended reads TERMINATED."""
    assert end.row.state.terminal, f"the order's row was left {end.row.state}"
    if end.result is not None:
        assert end.row.state == end.result.state, (end.row.state, end.result)
    else:
        assert end.terminated_at is not None, "the workflow failed on its own"
        assert end.row.state == OrderState.TERMINATED, end.row
    assert end.status.state == end.row.state, (end.status.state, end.row.state)


def cancels_honoured(sent: list[Sent], end: Ending) -> None:
    """P2: a cancel answered 202 ends the order CANCELLED; one answered 409 changed nothing."""
    cancels = [s for s in sent if s.kind == "cancel"]
    if end.terminated_at is not None:
        # An operator's terminate overrides what the order process promised before it;
        # after it, nothing is accepted.
        late = [c for c in cancels if c.sent_at > end.terminated_at]
        assert not any(c.accepted for c in late), late
        return
    if any(c.accepted for c in cancels):
        assert end.row.state == OrderState.CANCELLED, (
            f"a cancel was answered 202, yet the order ended {end.row.state} ({end.row.reason})"
        )
    for refused in (c for c in cancels if c.code == 409):
        assert end.row.reason != refused.reason, f"a cancel answered 409 ended the order: {refused}"


def address_is_the_last_accepted(sent: list[Sent], end: Ending) -> None:
    """P3: the address shipped = the last accepted address = the stored one = /status's."""
    updates = [s for s in sent if s.kind == "update_address"]
    accepted = [u for u in updates if u.accepted]
    # The last accepted: one no later accepted change was sent after the answer to.
    latest = [
        u
        for u in accepted
        if not any(v.sent_at > (u.answered_at or float("inf")) for v in accepted if v is not u)
    ]
    allowed = [u.address for u in latest] or [ORIGINAL]
    allowed += [u.address for u in updates if u.may_have_been_accepted]
    stored = Address.model_validate(end.row.address)
    if end.terminated_at is not None:
        # Ended by an operator: a change accepted but not yet stored never will be.
        allowed += [u.address for u in accepted] + [ORIGINAL]
    assert stored in allowed, (
        f"stored address {stored.city}, accepted: {[a.city for a in allowed if a]}"
    )
    assert end.status.address == stored, (end.status.address, stored)
    if end.shipped_to is not None:
        assert Address.model_validate(end.shipped_to) == stored, (end.shipped_to, stored)


def money_moves_once(end: Ending) -> None:
    """P4: at most one charge, no charge after a void, every refund matches a charge;
    a completed order is charged and dispatched once, a cancelled or failed one keeps no
    money, and one Temporal ended has its charge flagged for a refund decision."""
    kinds = [e["type"] for e in end.events]
    assert kinds.count("payment_charged") <= 1, kinds
    assert kinds.count("payment_refunded") <= kinds.count("payment_charged"), kinds
    assert not ("payment_voided" in kinds and "payment_charged" in kinds), kinds
    if end.row.state == OrderState.COMPLETED:
        assert end.payment is not None and end.payment.status == "charged", end.payment
        assert kinds.count("carrier_dispatched") == 1, kinds
    elif end.row.state in (OrderState.CANCELLED, OrderState.FAILED):
        assert end.payment is None or end.payment.status == "refunded", end.payment
        assert "carrier_dispatched" not in kinds, kinds
    elif end.row.state == OrderState.TERMINATED:
        # Neither refunded nor kept silently: a charge still held waits for a decision.
        held = end.payment is not None and end.payment.status == "charged"
        assert held == ("payment_needs_decision" in kinds), (end.payment, kinds)
