"""Run one business step as local activities until it succeeds.

Each call makes up to ``StepPolicy.attempts_per_call`` attempts one after the other,
each cut at its deadline, and reports every attempt back (workers/attempts.py).

A step that fails more often than chance explains (an outage) is handed to one
regular activity retried by the Temporal server, which keeps the history bounded
however long the outage lasts (the reason is in workers/policies.py).

Used by both workflows. Keeps the attempt counters and the recent errors that
the ``status`` query reports, and logs every failed attempt (replay-safe, via
``workflow.logger``). Workflow code only: deterministic, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from orderflow.models import StepError
    from workers import metrics
    from workers.attempts import TIMEOUT, TIMEOUT_MESSAGE, AttemptFailure, Burst, Outcome
    from workers.policies import OUTAGE_RETRY, SINGLE_ATTEMPT, StepPolicy

A = TypeVar("A")
R = TypeVar("R")

RECENT_ERRORS_KEPT = 10


class StepFailed(ApplicationError):
    """A step gave up: a non-retryable error, or its attempts/budget ran out.

    An ApplicationError, so that if a workflow lets it escape, the workflow fails
    with this reason instead of its task being retried forever.
    """

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}", type="StepFailed", non_retryable=True)
        self.step = step
        self.reason = reason


class StepRunner:
    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        self.attempts: dict[str, int] = {}
        self.errors: list[StepError] = []

    def add_attempts(self, attempts: dict[str, int]) -> None:
        """Count attempts made elsewhere (a child workflow's steps) as this order's."""
        for step, count in attempts.items():
            self.attempts[step] = self.attempts.get(step, 0) + count

    def record_error(self, step: str, attempt: int, type_: str, message: str) -> None:
        self.errors.append(
            StepError(step=step, type=type_, message=message, attempt=attempt, at=workflow.now())
        )
        del self.errors[:-RECENT_ERRORS_KEPT]

    async def run(
        self,
        step: str,
        activity: Callable[[Any, Burst[A]], Awaitable[Outcome[R]]],
        arg: A,
        policy: StepPolicy,
    ) -> R:
        started: datetime = workflow.now()
        consecutive_timeouts = 0
        attempt = 0
        while True:
            this_call = min(
                policy.attempts_per_call,
                policy.local_attempts - attempt,
                *([policy.max_attempts - attempt] if policy.max_attempts is not None else []),
            )
            budget_left = policy.budget - (workflow.now() - started) if policy.budget else None
            outcome = await self._call(
                activity,
                Burst(
                    arg=arg,
                    policy=policy,
                    max_attempts=this_call,
                    consecutive_timeouts=consecutive_timeouts,
                    budget_left_seconds=budget_left.total_seconds() if budget_left else None,
                ),
                policy.call_timeout(this_call, consecutive_timeouts),
            )
            giving_up = False
            for failure in outcome.failures:
                attempt += 1
                self.attempts[step] = self.attempts.get(step, 0) + 1
                metrics.attempt(activity.__name__, "timeout" if failure.timed_out else "error")
                consecutive_timeouts = consecutive_timeouts + 1 if failure.timed_out else 0
                self.record_error(step, attempt, failure.type, failure.message)
                giving_up = not failure.retryable or (
                    not outcome.succeeded
                    and failure is outcome.failures[-1]
                    and policy.gives_up(attempt, workflow.now() - started)
                )
                # A failed attempt that will be retried is routine (two in three fail
                # by design, twelve lines an order): DEBUG, since status, the attempts
                # metric and the final summary already carry it. At INFO this was the
                # busiest log line and a tenth of the order worker's CPU (py-spy at
                # 10 orders/s, docs/design.md). Giving up is what operators must see.
                log = workflow.logger.warning if giving_up else workflow.logger.debug
                log(
                    "step attempt failed",
                    extra={
                        "step": step,
                        "activity": activity.__name__,
                        "attempt": attempt,
                        "error_type": failure.type,
                        "error": failure.message,
                        "timeout_ms": failure.timeout_ms,
                        "giving_up": giving_up,
                    },
                )
                if giving_up:
                    metrics.step_finished(str(step), "gave_up", workflow.now() - started)
                    raise StepFailed(step, f"{failure.type}: {failure.message} (attempt {attempt})")
            if outcome.succeeded:
                attempt += 1
                self.attempts[step] = self.attempts.get(step, 0) + 1
                metrics.attempt(activity.__name__, "success")
                metrics.step_finished(str(step), "success", workflow.now() - started)
                if attempt > 1:
                    workflow.logger.debug(
                        "step succeeded after retries",
                        extra={"step": step, "activity": activity.__name__, "attempt": attempt},
                    )
                return cast(R, outcome.value)
            if policy.hands_over(attempt):
                return await self._hand_over(step, activity, arg, policy, started, attempt)

    async def _call(
        self,
        activity: Callable[[Any, Burst[A]], Awaitable[Outcome[R]]],
        burst: Burst[A],
        deadline: timedelta,
    ) -> Outcome[R]:
        """One local-activity call of up to ``burst.max_attempts`` attempts. A call that
        fails as a whole (its own deadline, a lost worker, a bug outside the attempts)
        counts as one failed attempt."""
        try:
            return await workflow.execute_local_activity_method(
                activity, burst, start_to_close_timeout=deadline, retry_policy=SINGLE_ATTEMPT
            )
        except FailureError as err:
            # The SDK hands a failed local activity over in several shapes: live,
            # a call that raised is the ApplicationError itself and a timeout an
            # ActivityError wrapping TimeoutError; on replay (cache eviction, a query
            # after restart) the same timeout is a bare TimeoutError. All must take
            # the same path, or replay diverges from history.
            cause = err.cause if isinstance(err, ActivityError) else err
            if isinstance(cause, CancelledError):
                raise  # the workflow is being cancelled: stop, do not retry
            type_, message, retryable = _describe(cause)
            failure = AttemptFailure(
                type=type_,
                message=message,
                retryable=retryable,
                timeout_ms=int(deadline.total_seconds() * 1000),
            )
            return Outcome(succeeded=False, failures=[failure])

    async def _hand_over(
        self,
        step: str,
        activity: Callable[[Any, Burst[A]], Awaitable[Outcome[R]]],
        arg: A,
        policy: StepPolicy,
        started: datetime,
        failed: int,
    ) -> R:
        """After ``failed`` local attempts (an outage), the rest of the step as one
        regular activity, retried by the server (OUTAGE_RETRY) until it succeeds or the
        policy's attempts or budget run out. However many attempts that takes, the
        history gains one activity's events (scheduled, started, closed)."""
        metrics.step_handed_over(str(step))
        workflow.logger.warning(
            "step handed to server-side retries",
            extra={"step": step, "activity": activity.__name__, "failed_attempts": failed},
        )
        self.record_error(
            step,
            failed,
            "HandedOver",
            f"{failed} attempts failed in a row: retried by the Temporal server from now on",
        )
        self.attempts[step] = self.attempts.get(step, 0) + 1
        budget_left = policy.budget - (workflow.now() - started) if policy.budget else None
        # 0 is the server's "no limit".
        attempts_left = 0 if policy.max_attempts is None else policy.max_attempts - failed
        try:
            outcome = await workflow.execute_activity_method(
                activity,
                Burst(arg=arg, policy=policy),
                start_to_close_timeout=policy.outage_attempt_timeout,
                schedule_to_close_timeout=budget_left,
                retry_policy=dataclasses.replace(OUTAGE_RETRY, maximum_attempts=attempts_left),
            )
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                raise
            type_, message, _ = _describe(err.cause)
            if err.retry_state == RetryState.TIMEOUT:
                # The budget ran out (schedule-to-close): say so, and keep what the
                # last attempt died of, which is what an operator needs to know.
                message = f"its time budget ran out; last attempt: {message}"
            elif err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED and attempts_left:
                self._count_server_attempts(step, attempts_left)
            self.record_error(step, failed + 1, type_, message)
            workflow.logger.warning(
                "step failed on the server's retries",
                extra={"step": step, "activity": activity.__name__, "error": message},
            )
            metrics.step_finished(str(step), "gave_up", workflow.now() - started)
            raise StepFailed(step, f"{type_}: {message}") from err
        self._count_server_attempts(step, outcome.server_attempts)
        metrics.step_finished(str(step), "success", workflow.now() - started)
        return cast(R, outcome.value)

    def _count_server_attempts(self, step: str, made: int) -> None:
        """The server's attempts beyond the first (which was counted when the activity
        was scheduled, so that status shows it while the server retries)."""
        if made > 1:
            self.attempts[step] += made - 1


def _describe(cause: BaseException | None) -> tuple[str, str, bool]:
    """(type, message, retryable) of an attempt's failure."""
    if isinstance(cause, TimeoutError):
        if cause.type == TimeoutType.SCHEDULE_TO_CLOSE:
            # Only server-retried activities have one (the caller says the budget ran
            # out); what matters is the last attempt's failure, which the server
            # attaches as the cause.
            last = _describe(cause.cause)[1] if cause.cause else "no attempt failure recorded"
            return TIMEOUT, last, False
        return TIMEOUT, TIMEOUT_MESSAGE, True
    if isinstance(cause, ApplicationError):
        return cause.type or "ApplicationError", cause.message, not cause.non_retryable
    if cause is None:
        return "Unknown", "activity failed without a cause", True
    return type(cause).__name__, str(cause), True
