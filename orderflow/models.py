"""Typed messages shared by the HTTP functions and the workers.

Workflow and activity inputs/outputs are pydantic models carried by Temporal's
pydantic data converter; the API reuses the same models for its bodies, so a
field means the same thing at every hop.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Starts with a letter or digit, so "." and ".." (path segments in a URL) are not ids.
ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

OrderId = Annotated[str, StringConstraints(pattern=ORDER_ID_PATTERN)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Strict(BaseModel):
    """Unknown fields are rejected everywhere, so a typo is an error, not silence."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(Strict):
    line1: ShortText
    line2: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    city: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)
    ]
    country: Annotated[
        str,
        StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{2}$"),
    ] = Field(description="ISO 3166-1 alpha-2 code, e.g. DE")


class Item(Strict):
    sku: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    qty: int = Field(ge=1, le=1000)


class OrderState(StrEnum):
    RECEIVED = "RECEIVED"
    VALIDATED = "VALIDATED"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    PAYMENT_CHARGED = "PAYMENT_CHARGED"
    SHIPPING = "SHIPPING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    # Ended by Temporal, not by the order process: terminated by an operator, timed out
    # or deleted before the workflow could write its end (workers/reconciler.py).
    TERMINATED = "TERMINATED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {OrderState.COMPLETED, OrderState.CANCELLED, OrderState.FAILED, OrderState.TERMINATED}
)


class Step(StrEnum):
    """What the workflow is doing now; the names of the attempt counters."""

    RECEIVE = "receive_order"
    VALIDATE = "validate_order"
    REVIEW = "manual_review"
    CHARGE = "charge_payment"
    PREPARE = "prepare_package"
    DISPATCH = "dispatch_carrier"
    SHIP = "ship"
    MARK_SHIPPED = "mark_shipped"
    UPDATE_ADDRESS = "update_address"
    REFUND = "refund_payment"
    CLOSE = "close_order"
    DONE = "done"


# --- workflow inputs and outputs ------------------------------------------------


class OrderInput(Strict):
    order_id: OrderId
    payment_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
    address: Address
    items: list[Item] = Field(min_length=1, max_length=100)
    review_timeout_seconds: float = Field(gt=0)
    shipping_max_attempts: int = Field(ge=1, le=10)
    shipping_task_queue: str = "shipping"


# The order workflow's first run (its chain): the writer its order row belongs to, so a
# reused order id can never write another run's order (orderflow/store.py).
RunId = Annotated[str, Field(min_length=1)]


class OrderResult(Strict):
    order_id: str
    state: OrderState
    reason: str | None = None


class ShippingInput(Strict):
    order_id: str
    attempt: int = Field(ge=1)
    address: Address
    # The parent order's run, which its shipment rows are checked against (None: a run
    # its parent started before the check existed).
    run_id: RunId | None = None


class ShippingResult(Strict):
    tracking_number: str
    attempts: dict[str, int] = Field(default_factory=dict)


class DispatchFailure(Strict):
    """Child to parent: this shipping run gave up on dispatch."""

    reason: str
    attempts: dict[str, int] = Field(default_factory=dict)


class CancelRequest(Strict):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = (
        "cancelled by customer"
    )


class AddressUpdate(Strict):
    address: Address


class UpdateAccepted(Strict):
    order_id: str
    accepted: str
    # False: accepted and still being applied (an address being stored): it will be,
    # and nothing has used the old value since it was accepted.
    applied: bool = True


# --- live status ------------------------------------------------------------------


class StepError(Strict):
    step: str
    type: str
    message: str
    attempt: int
    at: datetime


class OrderStatus(BaseModel):
    order_id: str
    workflow_id: str
    state: OrderState
    step: str
    attempts: dict[str, int] = Field(default_factory=dict)
    errors: list[StepError] = Field(default_factory=list)
    address: Address | None = None
    payment_id: str | None = None
    payment_status: str | None = None
    approved: bool = False
    shipping_attempt: int = 0
    tracking_number: str | None = None
    reason: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    source: str = Field(
        "workflow",
        description="`workflow` (live query), `database` (stored state: the order ended, or "
        "its worker was busy) or `temporal` (just started, not stored yet: Temporal accepted the "
        "start)",
    )


# --- activity inputs --------------------------------------------------------------


class OrderRef(Strict):
    order_id: str
    run_id: RunId


class NewOrder(Strict):
    order_id: str
    run_id: RunId
    payment_id: str
    address: Address
    items: list[Item]


class ValidateInput(Strict):
    order_id: str
    run_id: RunId
    address: Address
    items: list[Item]


class ChargeInput(Strict):
    order_id: str
    run_id: RunId
    payment_id: str
    items: list[Item]


class ChargeResult(Strict):
    payment_id: str
    amount: int
    status: str


class PrepareInput(Strict):
    order_id: str
    attempt: int
    address: Address
    run_id: RunId | None = None


class DispatchInput(Strict):
    order_id: str
    attempt: int
    address: Address
    run_id: RunId | None = None


class PersistAddressInput(Strict):
    order_id: str
    run_id: RunId
    address: Address
    seq: int = Field(ge=1, description="n-th accepted update; makes the event idempotent")


class CloseInput(Strict):
    order: NewOrder
    state: OrderState
    reason: str
    summary: OrderStatus


class ShippedInput(Strict):
    order_id: str
    run_id: RunId
    summary: OrderStatus
