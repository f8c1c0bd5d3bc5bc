"""The attempt loop inside one local-activity call (workers/attempts.py), run in the
SDK's activity test environment: deadlines, what is reported, when it stops."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from workers import attempts
from workers.attempts import Burst, Outcome
from workers.flaky import FORCED_FAILURE
from workers.policies import StepPolicy

FAST = StepPolicy(attempt_timeout=timedelta(milliseconds=50))


class Permanent(Exception):
    pass


def scripted(*answers: str) -> Callable[[int], Awaitable[int]]:
    """An attempt that, call by call, hangs ('hang'), fails ('fail'), raises a permanent
    error ('permanent'), raises its own TimeoutError ('own-timeout') or answers ('ok')."""
    calls = iter(answers)

    async def attempt(arg: int) -> int:
        answer = next(calls)
        if answer == "hang":
            await asyncio.sleep(300)
        if answer == "fail":
            raise RuntimeError(FORCED_FAILURE)
        if answer == "permanent":
            raise Permanent("no such product")
        if answer == "own-timeout":
            raise TimeoutError("the carrier's API timed out")
        return arg * 2

    return attempt


async def local(burst: Burst[int], attempt: Callable[[int], Awaitable[int]]) -> Outcome[int]:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, is_local=True)
    return await env.run(attempts.run, burst, attempt, Permanent)


async def test_a_hung_attempt_is_cut_at_its_deadline_and_the_next_one_runs() -> None:
    began = time.monotonic()
    outcome = await local(Burst(arg=21, policy=FAST, max_attempts=8), scripted("hang", "ok"))
    assert outcome.succeeded and outcome.value == 42
    assert [(f.type, f.timeout_ms) for f in outcome.failures] == [("Timeout", 50)]
    assert time.monotonic() - began < 5  # cut, not the 300 s sleep


async def test_every_failed_attempt_is_reported_in_order_up_to_the_calls_limit() -> None:
    outcome = await local(
        Burst(arg=1, policy=FAST, max_attempts=3), scripted("fail", "hang", "fail", "ok")
    )
    assert not outcome.succeeded and outcome.value is None
    assert [(f.type, f.message, f.retryable) for f in outcome.failures] == [
        ("RuntimeError", FORCED_FAILURE, True),
        ("Timeout", attempts.TIMEOUT_MESSAGE, True),
        ("RuntimeError", FORCED_FAILURE, True),
    ]


async def test_a_permanent_error_ends_the_call_at_once() -> None:
    outcome = await local(
        Burst(arg=1, policy=FAST, max_attempts=8), scripted("fail", "permanent", "ok")
    )
    assert not outcome.succeeded
    assert [(f.type, f.retryable) for f in outcome.failures] == [
        ("RuntimeError", True),
        ("Permanent", False),
    ]


async def test_a_non_retryable_application_error_ends_the_call_too() -> None:
    async def refused(arg: int) -> int:
        raise ApplicationError("payment voided", type="PaymentVoided", non_retryable=True)

    outcome = await local(Burst(arg=1, policy=FAST, max_attempts=8), refused)
    assert [(f.type, f.message, f.retryable) for f in outcome.failures] == [
        ("PaymentVoided", "payment voided", False)
    ]


async def test_the_attempts_own_timeout_error_is_an_error_not_a_deadline() -> None:
    outcome = await local(Burst(arg=1, policy=FAST, max_attempts=2), scripted("own-timeout", "ok"))
    assert outcome.succeeded
    assert [(f.type, f.message) for f in outcome.failures] == [
        ("TimeoutError", "the carrier's API timed out")
    ]


async def test_the_deadline_stretch_carries_on_from_earlier_calls() -> None:
    policy = StepPolicy()
    outcome = await local(
        Burst(arg=1, policy=policy, max_attempts=2, consecutive_timeouts=3),
        scripted("hang", "hang"),
    )
    assert [f.timeout_ms for f in outcome.failures] == [150, 225]


async def test_no_attempt_starts_once_the_steps_budget_is_spent() -> None:
    outcome = await local(
        Burst(arg=1, policy=FAST, max_attempts=8, budget_left_seconds=0), scripted("fail", "ok")
    )
    assert not outcome.succeeded and len(outcome.failures) == 1


async def test_as_a_server_retried_activity_it_makes_one_attempt_and_raises() -> None:
    env = ActivityEnvironment()  # a regular activity: is_local is False
    with pytest.raises(RuntimeError, match=FORCED_FAILURE):
        await env.run(attempts.run, Burst(arg=1, policy=FAST, max_attempts=8), scripted("fail"))
    with pytest.raises(ApplicationError) as permanent:
        await env.run(attempts.run, Burst(arg=1, policy=FAST), scripted("permanent"), Permanent)
    assert permanent.value.non_retryable and permanent.value.type == "Permanent"
    # It says which of the server's attempts succeeded, so the workflow counts them all.
    env.info = dataclasses.replace(env.info, attempt=3)
    outcome = await env.run(attempts.run, Burst(arg=4, policy=FAST), scripted("ok"))
    assert outcome == Outcome(succeeded=True, value=8, server_attempts=3)
