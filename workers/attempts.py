"""Several attempts of one step inside one local-activity call, each cut at its deadline.

Why not one call per attempt: every local-activity call costs the worker CPU in the
SDK (the hand-off from the core, the completion, the activation that follows, the
history marker), and flaky_call fails two attempts in three, so that machinery would
be most of the workers' work (docs/decisions/0001).

Each attempt still runs under its own deadline: ``asyncio.timeout`` cancels a hung
flaky_call at the deadline, the same cancellation the SDK applies to a local
activity at its start-to-close. The call reports every failed attempt back
(``Outcome.failures``), so the workflow keeps counting attempts and recording errors
for ``status``, a call at a time (at most ``StepPolicy.attempts_per_call``).

Run as a regular activity (a step handed to the server's retries, see
workers/steps.py), a call makes exactly one attempt and raises its failure, so
that the server retries it.

Activity code, not workflow code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from orderflow.models import Strict
from workers.errors import business_errors
from workers.policies import StepPolicy

A = TypeVar("A")
R = TypeVar("R")

TIMEOUT = "Timeout"
TIMEOUT_MESSAGE = "attempt exceeded its start-to-close deadline"


class Burst(Strict, Generic[A]):
    """A call's input: the step's argument and which attempts to make."""

    arg: A
    policy: StepPolicy
    # At most this many attempts in this call; it stops at the first success.
    max_attempts: int = 1
    # Timeouts in a row before this call: the deadline stretch carries on across calls.
    consecutive_timeouts: int = 0
    # What is left of the step's budget: no further attempt starts once it is spent.
    budget_left_seconds: float | None = None


class AttemptFailure(Strict):
    type: str
    message: str
    retryable: bool = True
    timeout_ms: int

    @property
    def timed_out(self) -> bool:
        return self.type == TIMEOUT


class Outcome(Strict, Generic[R]):
    """A call's result: the value if an attempt succeeded, and every failed attempt."""

    succeeded: bool
    value: R | None = None
    failures: list[AttemptFailure] = []
    # Run as a regular activity: the server's number of the attempt that succeeded,
    # i.e. how many attempts the server made in all (each failed one raised).
    server_attempts: int = 0


async def run(
    burst: Burst[A],
    attempt: Callable[[A], Awaitable[R]],
    *non_retryable: type[Exception],
) -> Outcome[R]:
    """Attempt ``attempt(burst.arg)`` until it succeeds, a failure is permanent, or the
    call's attempts or the step's budget run out."""
    info = activity.info()
    if not info.is_local:
        with business_errors(*non_retryable):
            value = await attempt(burst.arg)
        return Outcome(succeeded=True, value=value, server_attempts=info.attempt)
    failures: list[AttemptFailure] = []
    timeouts = burst.consecutive_timeouts
    started = time.monotonic()
    for _ in range(burst.max_attempts):
        budget = burst.budget_left_seconds
        if failures and budget is not None and time.monotonic() - started >= budget:
            break
        deadline = burst.policy.timeout_for(timeouts)
        timeout_ms = int(deadline.total_seconds() * 1000)
        try:
            async with asyncio.timeout(deadline.total_seconds()) as cut:
                with business_errors(*non_retryable):
                    value = await attempt(burst.arg)
        except TimeoutError as err:
            if not cut.expired():
                failures.append(_failure(err, timeout_ms))
                timeouts = 0
                continue
            failures.append(
                AttemptFailure(type=TIMEOUT, message=TIMEOUT_MESSAGE, timeout_ms=timeout_ms)
            )
            timeouts += 1
        except Exception as err:  # every failure is reported: none is lost
            failures.append(_failure(err, timeout_ms))
            timeouts = 0
            if not failures[-1].retryable:
                break
        else:
            return Outcome(succeeded=True, value=value, failures=failures)
    return Outcome(succeeded=False, failures=failures)


def _failure(err: Exception, timeout_ms: int) -> AttemptFailure:
    if isinstance(err, ApplicationError):
        return AttemptFailure(
            type=err.type or "ApplicationError",
            message=err.message,
            retryable=not err.non_retryable,
            timeout_ms=timeout_ms,
        )
    return AttemptFailure(type=type(err).__name__, message=str(err), timeout_ms=timeout_ms)
