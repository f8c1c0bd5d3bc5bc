"""OrderWorkflow: the order's life, from receipt to shipped (or cancelled, or failed).

    receive -> validate -> manual review (wait for `approve`, bounded by a timer)
            -> charge payment -> ShippingWorkflow child (retried, bounded)
            -> mark shipped

Customers act on a running order through messages. ``cancel`` and
``update_address`` are validated updates, so the API can tell at once whether the
request was taken; ``approve`` is a signal (harmless to repeat, kept if early):

* ``approve``        -- kept if it comes before the review; no effect once ending.
* ``cancel``         -- allowed until shipping starts. After payment it triggers a
                        refund; from shipping on it is rejected.
* ``update_address`` -- allowed until shipping starts; persisted, and used by shipping.

Shipping starts right after the payment, so the window closes there: the child
ships to the address it is started with, without a round trip back to this
workflow (docs/design.md has the numbers behind that choice).

Each step is a local activity run by ``StepRunner`` (see workers/policies.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError, FailureError

with workflow.unsafe.imports_passed_through():
    from orderflow.models import (
        AddressUpdate,
        CancelRequest,
        ChargeInput,
        ChargeResult,
        CloseInput,
        DispatchFailure,
        NewOrder,
        OrderInput,
        OrderRef,
        OrderResult,
        OrderState,
        OrderStatus,
        PersistAddressInput,
        ShippedInput,
        ShippingInput,
        Step,
        UpdateAccepted,
        ValidateInput,
    )
    from workers import metrics
    from workers.order.activities import OrderActivities
    from workers.policies import (
        ADDRESS_STEP,
        BUSINESS_STEP,
        COMPENSATION_STEP,
        RECORD_BEFORE_ACTING,
    )
    from workers.shipping.workflow import ShippingWorkflow
    from workers.steps import StepFailed, StepRunner

REVIEW_TIMEOUT_REASON = "review_timeout"


@workflow.defn(name="OrderWorkflow")
class OrderWorkflow:
    @workflow.init
    def __init__(self, order: OrderInput) -> None:
        self._order = order
        self._address = order.address
        self._address_updates = 0
        self._address_seq = 0  # the update whose address self._address is
        self._addresses_persisting = 0
        self._recorded = False  # the order's row exists (its first step committed)
        self._closing = False
        self._failing = False
        self._state = OrderState.RECEIVED
        self._step = Step.RECEIVE
        self._steps = StepRunner(workflow.info().workflow_id)
        # Every write names the run chain it comes from; the order row keeps the one
        # that created it (orderflow/store.py). The chain's first run, not this run, so
        # a continue-as-new (or reset) of this order still owns its row.
        self._run_id = workflow.info().first_execution_run_id
        self._approved = False
        self._cancel: CancelRequest | None = None
        self._shipping_started = False
        self._dispatch_failures: list[str] = []
        self._payment: ChargeResult | None = None
        self._payment_attempted = False
        self._shipping_attempt = 0
        self._tracking: str | None = None
        self._reason: str | None = None
        self._started_at: datetime = workflow.now()
        self._updated_at: datetime = self._started_at
        self._finished_at: datetime | None = None

    # --- the business process ----------------------------------------------------

    @workflow.run
    async def run(self, order: OrderInput) -> OrderResult:
        try:
            await self._steps.run(
                Step.RECEIVE, OrderActivities.order_received, self._new_order(), BUSINESS_STEP
            )
            self._recorded = True
            if self._cancel:
                return await self._end_cancelled()

            self._at(Step.VALIDATE)
            await self._steps.run(
                Step.VALIDATE,
                OrderActivities.order_validated,
                ValidateInput(
                    order_id=order.order_id,
                    run_id=self._run_id,
                    address=self._address,
                    items=order.items,
                ),
                BUSINESS_STEP,
            )
            self._set_state(OrderState.VALIDATED)
            if self._cancel:
                return await self._end_cancelled()

            if not await self._manual_review():
                return await self._end_cancelled()

            self._at(Step.CHARGE)
            self._payment_attempted = True
            self._payment = await self._steps.run(
                Step.CHARGE,
                OrderActivities.payment_charged,
                ChargeInput(
                    order_id=order.order_id,
                    run_id=self._run_id,
                    payment_id=order.payment_id,
                    items=order.items,
                ),
                BUSINESS_STEP,
            )
            self._set_state(OrderState.PAYMENT_CHARGED)
            # An accepted address change ships: wait until each one is stored and applied.
            # A cancel accepted meanwhile still wins: this is the last look before the
            # point of no return.
            await workflow.wait_condition(lambda: self._addresses_persisting == 0)
            if self._cancel:
                return await self._end_cancelled()

            shipping_failure = await self._ship()
            if shipping_failure is not None:
                return await self._end_failed(shipping_failure)

            self._at(Step.MARK_SHIPPED)
            await self._steps.run(
                Step.MARK_SHIPPED,
                OrderActivities.order_shipped,
                ShippedInput(
                    order_id=order.order_id,
                    run_id=self._run_id,
                    summary=self._summary(OrderState.COMPLETED),
                ),
                BUSINESS_STEP,
            )
            return await self._finish(OrderState.COMPLETED)
        except StepFailed as failed:
            return await self._end_failed(failed.message)

    async def _manual_review(self) -> bool:
        """Wait for approval; False when the order was cancelled or the review timed out."""
        self._at(Step.REVIEW)
        self._set_state(OrderState.AWAITING_APPROVAL)
        try:
            await workflow.wait_condition(
                lambda: self._approved or self._cancel is not None,
                timeout=timedelta(seconds=self._order.review_timeout_seconds),
                timeout_summary="manual review window",
            )
        except TimeoutError:
            workflow.logger.info(
                "manual review timed out", extra={"order_id": self._order.order_id}
            )
            self._cancel = CancelRequest(reason=REVIEW_TIMEOUT_REASON)
            return False
        return self._cancel is None

    async def _ship(self) -> str | None:
        """Run shipping until it succeeds; the reason it failed for good, else None."""
        order_id = self._order.order_id
        last_reason = "unknown"
        # The point of no return: from here on cancel and address changes are rejected.
        self._shipping_started = True
        for attempt in range(1, self._order.shipping_max_attempts + 1):
            self._shipping_attempt = attempt
            signalled_before = len(self._dispatch_failures)
            self._at(Step.SHIP)
            self._set_state(OrderState.SHIPPING)
            metrics.shipping_run(attempt)
            try:
                result = await workflow.execute_child_workflow(
                    ShippingWorkflow.run,
                    ShippingInput(
                        order_id=order_id,
                        attempt=attempt,
                        address=self._address,
                        run_id=self._run_id,
                    ),
                    id=f"shipping-{order_id}-run{attempt}",
                    task_queue=self._order.shipping_task_queue,
                )
            except ChildWorkflowError as err:
                # This run's own reason: its dispatch_failed signal if it sent one, else
                # how it failed; never an earlier run's signal.
                signalled = self._dispatch_failures[signalled_before:]
                reason = signalled[-1] if signalled else _cause(err)
                last_reason = reason
                self._steps.record_error(Step.SHIP, attempt, "ShippingFailed", reason)
                workflow.logger.warning(
                    "shipping run failed",
                    extra={"order_id": order_id, "shipping_attempt": attempt, "error": reason},
                )
                continue
            self._tracking = result.tracking_number
            self._steps.add_attempts(result.attempts)
            return None
        return f"shipping failed after {self._order.shipping_max_attempts} attempts: {last_reason}"

    # --- endings -------------------------------------------------------------------

    async def _end_cancelled(self) -> OrderResult:
        assert self._cancel is not None
        await self._decision_recorded()
        await self._refund_if_charged()
        return await self._close(OrderState.CANCELLED, self._cancel.reason)

    async def _end_failed(self, reason: str) -> OrderResult:
        if self._cancel is not None:
            # The customer was told the cancel was accepted: that is how the order ends.
            # What failed stays in the errors that status reports.
            return await self._end_cancelled()
        self._failing = True  # from here a cancel is refused: it could not be honoured
        await self._decision_recorded()
        await self._refund_if_charged()
        return await self._close(OrderState.FAILED, reason)

    async def _decision_recorded(self) -> None:
        # Steps run as local activities inside the workflow task that decided to end the
        # order; if that task never completes (the worker stops), its accepted cancel is
        # not in the history and a new worker would not end the order. A timer completes
        # the task first, so refund and close only ever act on a recorded decision.
        await workflow.sleep(RECORD_BEFORE_ACTING)

    async def _refund_if_charged(self) -> None:
        # Also when the charge step gave up: an attempt may have committed and then
        # timed out. The refund is a no-op if nothing was charged.
        if not self._payment_attempted:
            return
        self._at(Step.REFUND)
        self._payment = (
            await self._steps.run(
                Step.REFUND,
                OrderActivities.refund_payment,
                OrderRef(order_id=self._order.order_id, run_id=self._run_id),
                COMPENSATION_STEP,
            )
            or self._payment
        )

    async def _close(self, state: OrderState, reason: str) -> OrderResult:
        self._at(Step.CLOSE)
        self._closing = True
        # The closed row keeps the address the customer was last told was accepted.
        await workflow.wait_condition(lambda: self._addresses_persisting == 0)
        self._reason = reason
        await self._steps.run(
            Step.CLOSE,
            OrderActivities.order_closed,
            CloseInput(
                order=self._new_order(), state=state, reason=reason, summary=self._summary(state)
            ),
            COMPENSATION_STEP,
        )
        return await self._finish(state)

    def _summary(self, state: OrderState) -> OrderStatus:
        """The status as it will read once the order has ended, for the database."""
        return self.status().model_copy(
            update={"state": state, "step": Step.DONE, "finished_at": workflow.now()}
        )

    async def _finish(self, state: OrderState) -> OrderResult:
        self._set_state(state)
        self._finished_at = workflow.now()
        metrics.order_finished(state.value)
        self._at(Step.DONE)
        # Let an address update that is still persisting finish before the run ends.
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.logger.info(
            "order finished",
            extra={"order_id": self._order.order_id, "state": self._state, "reason": self._reason},
        )
        return OrderResult(order_id=self._order.order_id, state=self._state, reason=self._reason)

    # --- messages from customers ------------------------------------------------------

    @workflow.signal
    def approve(self) -> None:
        # A signal, not an update: the server records it at once, without waiting for
        # this workflow's current task (which may be a long attempt loop), so the API
        # answers fast under load. Nothing needs a synchronous verdict here: approving
        # twice is harmless, and an approval that arrives while the order is being
        # cancelled or has ended simply has no effect (the API answers 409 for ended
        # orders from the database).
        if not self._approved:
            workflow.logger.info("approved", extra={"order_id": self._order.order_id})
        self._approved = True
        self._touch()

    @workflow.update
    def cancel(self, request: CancelRequest) -> UpdateAccepted:
        if self._cancel is None:
            self._cancel = request
            workflow.logger.info(
                "cancel accepted",
                extra={"order_id": self._order.order_id, "reason": request.reason},
            )
        self._touch()
        return UpdateAccepted(order_id=self._order.order_id, accepted="cancel")

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        self._reject_if_over()
        if self._shipping_started:
            raise _rejected("shipping has started; the order can no longer be cancelled")

    @workflow.update
    async def update_address(self, update: AddressUpdate) -> UpdateAccepted:
        # Stored first, used after: shipping and closing wait for every accepted change
        # to be stored, so "accepted" always means "this is where it ships", and a
        # change that is still being stored has not been used by anything yet.
        self._address_updates += 1
        seq = self._address_updates
        self._addresses_persisting += 1
        try:
            # Accepted (and recorded) before the store: see RECORD_BEFORE_ACTING.
            await workflow.sleep(RECORD_BEFORE_ACTING)
            # The row is created by the order's first step; an order that ends before it
            # ever is gets its row, with this address, from closing.
            await workflow.wait_condition(lambda: self._recorded or self._closing)
            if self._recorded and not await self._steps.run(
                Step.UPDATE_ADDRESS,
                OrderActivities.address_updated,
                PersistAddressInput(
                    order_id=self._order.order_id,
                    run_id=self._run_id,
                    address=update.address,
                    seq=seq,
                ),
                ADDRESS_STEP,
            ):
                raise ApplicationError(
                    "the order has ended; the address was not changed",
                    type="NotApplied",
                    non_retryable=True,
                )
        finally:
            self._addresses_persisting -= 1
        if seq > self._address_seq:  # two changes in flight: the later one wins, as stored
            self._address, self._address_seq = update.address, seq
        self._touch()
        return UpdateAccepted(order_id=self._order.order_id, accepted="update_address")

    @update_address.validator
    def _validate_update_address(self, update: AddressUpdate) -> None:
        self._reject_if_over()
        if self._shipping_started:
            raise _rejected("shipping has started; the address can no longer change")
        if self._cancel is not None:
            raise _rejected("the order is being cancelled")

    # --- messages from the shipping child --------------------------------------------

    @workflow.signal
    def dispatch_failed(self, failure: DispatchFailure) -> None:
        self._dispatch_failures.append(failure.reason)
        self._steps.add_attempts(failure.attempts)

    # --- live state --------------------------------------------------------------------

    @workflow.query
    def status(self) -> OrderStatus:
        return OrderStatus(
            order_id=self._order.order_id,
            workflow_id=workflow.info().workflow_id,
            state=self._state,
            step=self._step,
            attempts=dict(self._steps.attempts),
            errors=list(self._steps.errors),
            address=self._address,
            payment_id=self._order.payment_id,
            payment_status=self._payment.status if self._payment else None,
            approved=self._approved,
            shipping_attempt=self._shipping_attempt,
            tracking_number=self._tracking,
            reason=self._reason,
            started_at=self._started_at,
            updated_at=self._updated_at,
            finished_at=self._finished_at,
        )

    # --- helpers -------------------------------------------------------------------------

    def _new_order(self) -> NewOrder:
        return NewOrder(
            order_id=self._order.order_id,
            run_id=self._run_id,
            payment_id=self._order.payment_id,
            address=self._address,
            items=self._order.items,
        )

    def _reject_if_over(self) -> None:
        if self._state.terminal:
            raise _rejected(f"the order is already {self._state.value}")
        if self._failing or self._step in (Step.REFUND, Step.CLOSE, Step.DONE):
            raise _rejected("the order is ending")

    def _at(self, step: Step) -> None:
        self._step = step
        self._touch()

    def _set_state(self, state: OrderState) -> None:
        if state != self._state:
            workflow.logger.info(
                "order state changed",
                extra={"order_id": self._order.order_id, "from": self._state, "to": state},
            )
        self._state = state
        self._touch()

    def _touch(self) -> None:
        self._updated_at = workflow.now()


def _rejected(message: str) -> ApplicationError:
    return ApplicationError(message, type="Rejected", non_retryable=True)


def _cause(err: ChildWorkflowError) -> str:
    """The innermost failure message of a failed child run."""
    cause: BaseException = err
    while isinstance(cause, FailureError) and cause.cause is not None:
        cause = cause.cause
    return str(cause)
