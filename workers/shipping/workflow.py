"""ShippingWorkflow: prepare the package, then dispatch it with a carrier.

Runs as a child of OrderWorkflow on its own task queue (``shipping``), one run
per shipping attempt. Dispatch is the point of no return, so the parent owns
it: after preparing, the child tells the parent it is ready and waits for the
``dispatch`` signal that carries the address to ship to. Until then the
parent may still cancel the order or change the address.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from orderflow.models import (
        DispatchFailure,
        DispatchGo,
        DispatchInput,
        PrepareInput,
        ShippingInput,
        ShippingResult,
        Step,
    )
    from workers.policies import BUSINESS_STEP, DISPATCH_STEP
    from workers.shipping.activities import ShippingActivities
    from workers.steps import StepFailed, StepRunner

# Signal names on the parent (OrderWorkflow); strings keep this module free of it.
PARENT_READY_SIGNAL = "ready_to_dispatch"
PARENT_DISPATCH_FAILED_SIGNAL = "dispatch_failed"


@workflow.defn(name="ShippingWorkflow")
class ShippingWorkflow:
    @workflow.init
    def __init__(self, shipping: ShippingInput) -> None:
        self._go: DispatchGo | None = None
        self._aborted = False
        self._step = Step.PREPARE
        self._steps = StepRunner(workflow.info().workflow_id, shipping.step_mode)

    @workflow.signal
    def dispatch(self, go: DispatchGo) -> None:
        self._go = go

    @workflow.signal
    def abort(self) -> None:
        """The order was cancelled before dispatch: end without dispatching."""
        self._aborted = True

    @workflow.query
    def progress(self) -> dict[str, object]:
        return {"step": self._step, "attempts": dict(self._steps.attempts)}

    @workflow.run
    async def run(self, shipping: ShippingInput) -> ShippingResult:
        parent = workflow.info().parent
        parent_handle = (
            workflow.get_external_workflow_handle(parent.workflow_id, run_id=parent.run_id)
            if parent
            else None
        )
        await self._steps.run(
            Step.PREPARE,
            ShippingActivities.package_prepared,
            PrepareInput(
                order_id=shipping.order_id, attempt=shipping.attempt, address=shipping.address
            ),
            BUSINESS_STEP,
        )

        address = shipping.address
        if parent_handle is not None:
            await parent_handle.signal(PARENT_READY_SIGNAL, shipping.attempt)
            await workflow.wait_condition(lambda: self._go is not None or self._aborted)
            if self._go is None:
                raise ApplicationError(
                    "order cancelled before dispatch", type="ShippingAborted", non_retryable=True
                )
            address = self._go.address

        self._step = Step.DISPATCH
        try:
            tracking = await self._steps.run(
                Step.DISPATCH,
                ShippingActivities.carrier_dispatched,
                DispatchInput(
                    order_id=shipping.order_id, attempt=shipping.attempt, address=address
                ),
                DISPATCH_STEP,
            )
        except StepFailed as failed:
            if parent_handle is not None:
                await parent_handle.signal(
                    PARENT_DISPATCH_FAILED_SIGNAL,
                    DispatchFailure(reason=failed.reason, attempts=dict(self._steps.attempts)),
                )
            raise ApplicationError(
                f"dispatch failed: {failed.reason}", type="DispatchFailed", non_retryable=True
            ) from failed
        self._step = Step.DONE
        return ShippingResult(tracking_number=tracking, attempts=dict(self._steps.attempts))
