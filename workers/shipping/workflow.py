"""ShippingWorkflow: prepare the package, then dispatch it with a carrier.

Runs as a child of OrderWorkflow on its own task queue (``shipping``), one run
per shipping attempt, shipping to the address it is started with: from the
moment shipping starts the order's address and cancellation are frozen (the
parent rejects both). If dispatch gives up, the run tells the parent
(``dispatch_failed``) and fails; the parent decides whether to try a new run.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from orderflow.models import (
        DispatchFailure,
        DispatchInput,
        PrepareInput,
        ShippingInput,
        ShippingResult,
        Step,
    )
    from workers.policies import BUSINESS_STEP, DISPATCH_STEP
    from workers.shipping.activities import ShippingActivities
    from workers.steps import StepFailed, StepRunner

# Signal name on the parent (OrderWorkflow); a string keeps this module free of it.
PARENT_DISPATCH_FAILED_SIGNAL = "dispatch_failed"


@workflow.defn(name="ShippingWorkflow")
class ShippingWorkflow:
    @workflow.init
    def __init__(self, shipping: ShippingInput) -> None:
        self._step = Step.PREPARE
        self._steps = StepRunner(workflow.info().workflow_id)

    @workflow.query
    def progress(self) -> dict[str, object]:
        return {"step": self._step, "attempts": dict(self._steps.attempts)}

    @workflow.run
    async def run(self, shipping: ShippingInput) -> ShippingResult:
        await self._steps.run(
            Step.PREPARE,
            ShippingActivities.package_prepared,
            PrepareInput(
                order_id=shipping.order_id,
                attempt=shipping.attempt,
                address=shipping.address,
                run_id=shipping.run_id,
            ),
            BUSINESS_STEP,
        )
        self._step = Step.DISPATCH
        try:
            tracking = await self._steps.run(
                Step.DISPATCH,
                ShippingActivities.carrier_dispatched,
                DispatchInput(
                    order_id=shipping.order_id,
                    attempt=shipping.attempt,
                    address=shipping.address,
                    run_id=shipping.run_id,
                ),
                DISPATCH_STEP,
            )
        except StepFailed as failed:
            await self._tell_parent(
                DispatchFailure(reason=failed.reason, attempts=dict(self._steps.attempts))
            )
            raise ApplicationError(
                f"dispatch failed: {failed.reason}", type="DispatchFailed", non_retryable=True
            ) from failed
        self._step = Step.DONE
        return ShippingResult(tracking_number=tracking, attempts=dict(self._steps.attempts))

    async def _tell_parent(self, failure: DispatchFailure) -> None:
        parent = workflow.info().parent
        if parent is not None:
            await workflow.get_external_workflow_handle(
                parent.workflow_id, run_id=parent.run_id
            ).signal(PARENT_DISPATCH_FAILED_SIGNAL, failure)
