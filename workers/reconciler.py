"""Close the orders whose workflow Temporal ended without the order's final write.

An operator can terminate, reset or delete an order's workflow from Temporal's UI or
CLI; a workflow can also time out or fail on a bug. Its order row would then read
RECEIVED ... SHIPPING forever and count as load for admission control. The
reconciler runs in every order worker and closes such rows as ``TERMINATED`` with
Temporal's reason, within a sweep or two (``RECONCILE_INTERVAL_SECONDS``):

* Closed executions, from Temporal's visibility: OrderWorkflow executions that closed
  other than by completing, since the last sweep. Cheap however many orders run.
* Quiet rows, checked one by one: unfinished rows not written for
  ``RECONCILE_QUIET_SECONDS``; finds workflows deleted from Temporal (which visibility
  no longer lists) and anything a sweep missed while the worker was down.

A row is closed only when no execution of its workflow id still runs: a reset ends
one run and goes on in a new one. A charged payment is neither refunded nor kept
silently (``store.close_ended``): an operator who ended an order by hand may know
what a refund would get wrong, and a person decides (docs/failure-behaviour.md).
Several workers may sweep at once: closing is idempotent.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from prometheus_client import Counter, Gauge
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from orderflow import store
from orderflow.settings import Settings

log = structlog.get_logger("orderflow.reconciler")

RECONCILED = Counter(
    "orderflow_orders_reconciled_total",
    "Orders closed as TERMINATED because Temporal ended their workflow without their "
    "final write, by how it ended.",
    ["how"],
)
AWAITING_DECISION = Gauge(
    "orderflow_payments_awaiting_decision",
    "Charged payments of orders Temporal ended: each needs a person to decide on a refund.",
)
SWEEP_ERRORS = Counter(
    "orderflow_reconcile_errors_total", "Reconciler sweeps that failed (and will be retried)."
)

WORKFLOW_PREFIX = "order-"
# Executions that closed since the last sweep are looked up again with this overlap:
# visibility is written a little after an execution closes.
VISIBILITY_OVERLAP = timedelta(seconds=30)
# On start, how far back closed executions are looked up (a worker down for longer
# leaves the rest to the quiet-row check).
FIRST_LOOKBACK = timedelta(hours=1)
QUIET_BATCH = 50

HOW = {
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed out",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued as new",
    WorkflowExecutionStatus.COMPLETED: "completed",
}
for _how in (*HOW.values(), "deleted", "ended"):
    RECONCILED.labels(how=_how)  # exported as 0 from the start: rules read it before any end


class Reconciler:
    def __init__(self, client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
        self._client = client
        self._pool = pool
        self._interval = settings.reconcile_interval_seconds
        self._quiet = settings.reconcile_quiet_seconds
        self._since = datetime.now(UTC) - FIRST_LOOKBACK
        self._checked: dict[str, float] = {}  # quiet order -> when it was last described

    async def run(self) -> None:
        """Sweep every interval until cancelled; a failed sweep is logged and retried."""
        while True:
            try:
                await self.sweep()
            except (OSError, asyncpg.PostgresError, RPCError, TimeoutError) as err:
                SWEEP_ERRORS.inc()
                log.warning("reconcile sweep failed", error=str(err))
            await asyncio.sleep(self._interval)

    async def sweep(self) -> int:
        """One pass of both checks; the number of orders closed."""
        closed = await self._closed_executions() + await self._quiet_rows()
        async with self._pool.acquire() as conn:
            AWAITING_DECISION.set(await store.payments_awaiting_decision(conn))
        return closed

    async def _closed_executions(self) -> int:
        started = datetime.now(UTC)
        since = (self._since - VISIBILITY_OVERLAP).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = (
            "WorkflowType = 'OrderWorkflow' AND ExecutionStatus != 'Running' "
            f"AND ExecutionStatus != 'Completed' AND CloseTime > '{since}'"
        )
        ids = sorted(
            {
                execution.id.removeprefix(WORKFLOW_PREFIX)
                async for execution in self._client.list_workflows(query)
                if execution.id.startswith(WORKFLOW_PREFIX)
            }
        )
        closed = await self._close_if_ended(ids)
        self._since = started
        return closed

    async def _quiet_rows(self) -> int:
        async with self._pool.acquire() as conn:
            quiet = await store.quiet_unfinished(conn, self._quiet, QUIET_BATCH * 4)
        now = time.monotonic()
        due = [oid for oid in quiet if now - self._checked.get(oid, -1e9) >= self._quiet]
        due = due[:QUIET_BATCH]
        for oid in due:
            self._checked[oid] = now
        self._checked = {oid: at for oid, at in self._checked.items() if oid in quiet}
        return await self._close_if_ended(due)

    async def _close_if_ended(self, order_ids: list[str]) -> int:
        if not order_ids:
            return 0
        async with self._pool.acquire() as conn:
            candidates = await store.unfinished(conn, order_ids)
        closed = 0
        for oid in candidates:
            ending = await self._ending(oid)
            if ending is None:
                continue
            how, reason = ending
            async with self._pool.acquire() as conn:
                if await store.close_ended(conn, oid, how, reason):
                    closed += 1
                    RECONCILED.labels(how=how).inc()
                    log.warning(
                        "order closed: its workflow ended", order_id=oid, how=how, reason=reason
                    )
        return closed

    async def _ending(self, order_id: str) -> tuple[str, str] | None:
        """How and why the order's workflow ended, or None while it still runs."""
        handle = self._client.get_workflow_handle(WORKFLOW_PREFIX + order_id)
        try:
            described = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return "deleted", "the workflow no longer exists in Temporal"
            raise
        status = described.status
        if status is None or status == WorkflowExecutionStatus.RUNNING:
            return None
        return HOW.get(status, "ended"), await self._reason(described)

    async def _reason(self, described: WorkflowExecutionDescription) -> str:
        """The reason Temporal recorded in the execution's last event."""
        response = await self._client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace=self._client.namespace,
                execution=WorkflowExecution(workflow_id=described.id, run_id=described.run_id),
                maximum_page_size=1,
            )
        )
        events = response.history.events
        if not events:
            return "no reason recorded"
        last = events[0]
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            return last.workflow_execution_terminated_event_attributes.reason or "no reason given"
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            return last.workflow_execution_failed_event_attributes.failure.message
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
            return "its execution or run timeout passed"
        return "it closed without the order's final write"
