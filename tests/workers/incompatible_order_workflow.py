"""A deliberately incompatible OrderWorkflow for tests/workers/test_versioning.py.

Its own module, importing only workflow code: the sandbox re-imports the module that
defines a workflow, and a test module's imports (asyncpg among them) must not be
loaded a second time there.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from orderflow.models import OrderInput, OrderResult
    from workers.order.workflow import OrderWorkflow


@workflow.defn(name="OrderWorkflow")
class IncompatibleOrderWorkflow(OrderWorkflow):
    """Version B: a timer before the first step. Replaying an order that version A
    started would fail with a non-determinism error."""

    @workflow.run
    async def run(self, order: OrderInput) -> OrderResult:
        await workflow.sleep(timedelta(milliseconds=10))
        return await super().run(order)
