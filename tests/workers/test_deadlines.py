"""workers/deadlines.py on a real worker and the real Temporal dev server: a regular
activity's attempt is cut in the worker at its start-to-close deadline, as a local
activity's is, instead of sleeping on after the server has moved to the next attempt;
and at the activity's schedule-to-close deadline when that comes first (the unit test
below: on the session's dev server the SDK happened to cancel such an attempt at the
budget too, 1.1 s, while a standalone run measured 5 s later, so no end-to-end test
here could tell the two apart)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from workers.deadlines import DeadlineInterceptor, seconds_left

ATTEMPTS = 3
attempts_cut: list[int] = []


@activity.defn
async def hangs_then_answers() -> int:
    attempt = activity.info().attempt
    if attempt < ATTEMPTS:
        try:
            await asyncio.sleep(300)  # as flaky_call does
        except asyncio.CancelledError:
            attempts_cut.append(attempt)
            raise
    return attempt


@workflow.defn(sandboxed=False)
class RegularActivityWorkflow:
    @workflow.run
    async def run(self) -> int:
        return await workflow.execute_activity(
            hangs_then_answers,
            start_to_close_timeout=timedelta(milliseconds=500),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100)),
        )


async def test_a_hung_regular_attempt_is_cut_at_its_deadline(temporal_client: Client) -> None:
    attempts_cut.clear()
    queue = f"deadlines-{uuid.uuid4()}"
    async with Worker(
        temporal_client,
        task_queue=queue,
        workflows=[RegularActivityWorkflow],
        activities=[hangs_then_answers],
        interceptors=[DeadlineInterceptor()],
    ):
        result = await temporal_client.execute_workflow(
            RegularActivityWorkflow.run, id=f"deadlines-{uuid.uuid4()}", task_queue=queue
        )
        # Still inside the worker: nothing has cancelled the attempts but their deadline.
        assert result == ATTEMPTS
        assert attempts_cut == list(range(1, ATTEMPTS))


def test_seconds_left_is_the_earlier_deadline() -> None:
    now = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    info = dataclasses.replace(
        ActivityEnvironment.default_info(),
        scheduled_time=now - timedelta(seconds=8),
        start_to_close_timeout=timedelta(seconds=4),
        schedule_to_close_timeout=timedelta(seconds=10),
    )
    assert seconds_left(info, now) == 2.0
    assert seconds_left(dataclasses.replace(info, schedule_to_close_timeout=None), now) == 4.0
    late = dataclasses.replace(info, scheduled_time=now - timedelta(seconds=30))
    assert seconds_left(late, now) == 0.0
    unbounded = dataclasses.replace(
        info, start_to_close_timeout=None, schedule_to_close_timeout=None
    )
    assert seconds_left(unbounded, now) is None
