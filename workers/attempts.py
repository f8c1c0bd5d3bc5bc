"""Every attempt of a step, counted where it runs and handed to the workflow.

A step's local activity is retried by the SDK inside the worker (workers/policies.py,
``StepPolicy.retry_within_call``): no workflow activation, no history marker per
attempt. The workflow then sees only the call's outcome, so this interceptor, on
every worker, keeps what each failed attempt of a local activity ran into and hands
it over with the result: the activity's value comes back as ``Attempted(value,
attempt, failed)``. The step runner (workers/steps.py) unwraps it, so the order's
status still shows every attempt and its error, and the attempts metric counts each.

The record of a call's failed attempts lives in the worker process: a local
activity's attempts all run in the worker that runs its workflow task.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

# Calls whose last attempt failed leave their record behind (the workflow gets the
# failure instead); the oldest are dropped past this many.
CALLS_REMEMBERED = 10_000
TIMEOUT = "Timeout"
TIMEOUT_MESSAGE = "attempt exceeded its start-to-close deadline"


class FailedAttempt(BaseModel):
    attempt: int
    type: str
    message: str
    at: datetime


class Attempted(BaseModel):
    """A local activity's value, with the attempt that produced it and the failed ones."""

    value: Any
    attempt: int
    failed: list[FailedAttempt]


class AttemptLog:
    def __init__(self, size: int = CALLS_REMEMBERED) -> None:
        self._size = size
        self._calls: OrderedDict[tuple[str, str], list[FailedAttempt]] = OrderedDict()

    def failed(self, call: tuple[str, str], attempt: int, type_: str, message: str) -> None:
        self._calls.setdefault(call, []).append(
            FailedAttempt(attempt=attempt, type=type_, message=message, at=datetime.now(UTC))
        )
        self._calls.move_to_end(call)
        while len(self._calls) > self._size:
            self._calls.popitem(last=False)

    def take(self, call: tuple[str, str]) -> list[FailedAttempt]:
        return self._calls.pop(call, [])


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, nxt: ActivityInboundInterceptor, log: AttemptLog) -> None:
        super().__init__(nxt)
        self._log = log

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if not info.is_local:
            return await super().execute_activity(input)
        call = (info.workflow_run_id or "", info.activity_id)
        try:
            value = await super().execute_activity(input)
        except asyncio.CancelledError:
            # The SDK cancels an attempt at its start-to-close deadline (or on shutdown).
            details = activity.cancellation_details()
            if details is None or not details.worker_shutdown:
                self._log.failed(call, info.attempt, TIMEOUT, TIMEOUT_MESSAGE)
            raise
        except ApplicationError as err:
            self._log.failed(call, info.attempt, err.type or "ApplicationError", err.message)
            raise
        except Exception as err:
            self._log.failed(call, info.attempt, type(err).__name__, str(err))
            raise
        return Attempted(value=value, attempt=info.attempt, failed=self._log.take(call))


class AttemptsInterceptor(Interceptor):
    """Put on every worker that runs these workflows (workers/process.py does)."""

    def __init__(self) -> None:
        self._log = AttemptLog()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self._log)
