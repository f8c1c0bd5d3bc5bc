"""Cut a regular activity's attempt at its start-to-close deadline, in the worker.

At the deadline the server fails the attempt and schedules the next one, but the
Python SDK leaves the attempt's coroutine running: flaky_call's 300 s sleep would
keep holding one of the worker's activity slots for five minutes. Local
activities are already cut by the worker; this does the same for the regular
activities that steps are handed to during an outage (workers/steps.py), so hung
attempts cannot pile up while the server keeps retrying.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)


class DeadlineInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CutAtDeadline(next)


class _CutAtDeadline(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        deadline = info.start_to_close_timeout
        if info.is_local or not deadline:
            return await super().execute_activity(input)
        async with asyncio.timeout(deadline.total_seconds()):
            return await super().execute_activity(input)
