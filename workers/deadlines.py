"""Cut a regular activity's attempt at its deadline, in the worker.

At the deadline the server fails the attempt and schedules the next one, but the
Python SDK leaves the attempt's coroutine running: flaky_call's 300 s sleep would
keep holding one of the worker's activity slots for five minutes. Local
activities are already cut by the worker; this does the same for the regular
activities that steps are handed to during an outage (workers/steps.py), so hung
attempts cannot pile up while the server keeps retrying.

The deadline is the attempt's start-to-close or the activity's schedule-to-close,
whichever comes first. The second matters for correctness, not only slots: when
the step's budget runs out the workflow compensates at once (a refund after a
charge that gave up), and an attempt left running could still commit its write
after that. The store fences the charge too (``store.PaymentVoided``); this keeps
such attempts from running on in the first place.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)


class DeadlineInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CutAtDeadline(next)


def seconds_left(info: activity.Info, now: datetime) -> float | None:
    """Seconds until the attempt must end, or None when nothing bounds it.

    The schedule-to-close deadline is the server's clock (``scheduled_time``) read
    on the worker's: skew moves the cut by as much, which NTP keeps to milliseconds.
    """
    limits = []
    if info.start_to_close_timeout:
        limits.append(info.start_to_close_timeout.total_seconds())
    if info.schedule_to_close_timeout:
        deadline = info.scheduled_time + info.schedule_to_close_timeout
        limits.append((deadline - now).total_seconds())
    return max(0.0, min(limits)) if limits else None


class _CutAtDeadline(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        # Local activities are cut by the worker already; None is no timeout at all.
        left = None if info.is_local else seconds_left(info, datetime.now(UTC))
        try:
            async with asyncio.timeout(left) as cut:
                return await super().execute_activity(input)
        except TimeoutError:
            if not cut.expired():
                raise  # the activity's own timeout, not the deadline
            # Said plainly, or the step's recent errors read "TimeoutError: " with no text.
            raise ApplicationError(
                f"attempt cut by the worker at its deadline ({left or 0:.1f} s)",
                type="AttemptDeadline",
            ) from None
