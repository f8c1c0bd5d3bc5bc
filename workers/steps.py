"""Run one business step as a local activity until it succeeds.

Used by both workflows. Keeps the attempt counters and the recent errors that
the ``status`` query reports, and logs every failed attempt (replay-safe, via
``workflow.logger``). Workflow code only: deterministic, no I/O.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar, get_type_hints

from pydantic import TypeAdapter
from temporalio import workflow
from temporalio.activity import _Definition as activity_definition
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
    TimeoutError,
)

with workflow.unsafe.imports_passed_through():
    from orderflow.models import StepError
    from workers import metrics
    from workers.attempts import TIMEOUT, Attempted
    from workers.policies import REGULAR_RETRY, StepMode, StepPolicy

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
    def __init__(self, workflow_id: str, mode: StepMode = "local") -> None:
        self.workflow_id = workflow_id
        self.mode = mode
        self.attempts: dict[str, int] = {}
        self.errors: list[StepError] = []

    def add_attempts(self, attempts: dict[str, int]) -> None:
        """Count attempts made elsewhere (a child workflow's steps) as this order's."""
        for step, count in attempts.items():
            self.attempts[step] = self.attempts.get(step, 0) + count

    def record_error(
        self, step: str, attempt: int, type_: str, message: str, at: datetime | None = None
    ) -> None:
        self.errors.append(
            StepError(
                step=step, type=type_, message=message, attempt=attempt, at=at or workflow.now()
            )
        )
        del self.errors[:-RECENT_ERRORS_KEPT]

    async def run(
        self,
        step: str,
        activity: Callable[[Any, A], Awaitable[R]],
        arg: A,
        policy: StepPolicy,
    ) -> R:
        if self.mode == "regular":
            return await self._run_regular(step, activity, arg, policy)
        started: datetime = workflow.now()
        timed_out_calls = 0
        made = 0  # attempts so far, over all calls
        name = activity.__name__
        while True:
            timeout = policy.timeout_for(timed_out_calls)
            retry = policy.retry_within_call(made)
            try:
                outcome = await workflow.execute_local_activity(
                    _name_of(activity),
                    arg,
                    result_type=Attempted,
                    start_to_close_timeout=timeout,
                    retry_policy=retry,
                )
            except FailureError as err:
                # The SDK hands a failed local activity over in several shapes: live,
                # an attempt that raised is the ApplicationError itself and a timeout
                # an ActivityError wrapping TimeoutError; on replay (cache eviction,
                # a query after restart) the same timeout is a bare TimeoutError.
                # All must take the same path, or replay diverges from history.
                cause = err.cause if isinstance(err, ActivityError) else err
                if isinstance(cause, CancelledError):
                    raise  # the workflow is being cancelled: stop, do not retry
                type_, message, retryable = _describe(cause)
                # A retryable failure used up the call's attempts; a non-retryable one
                # stopped it at once (its earlier attempts are not reported back).
                call_attempts = retry.maximum_attempts if retryable else 1
                made += call_attempts
                self._count(step, call_attempts)
                outcome_name = "timeout" if type_ == "Timeout" else "error"
                metrics.attempt(name, outcome_name, call_attempts)
                timed_out_calls = timed_out_calls + 1 if type_ == "Timeout" else 0
                self.record_error(step, made, type_, message)
                giving_up = not retryable or policy.gives_up(made, workflow.now() - started)
                workflow.logger.log(
                    logging.WARNING if giving_up else logging.INFO,
                    "step call failed",
                    extra={
                        "step": step,
                        "activity": name,
                        "attempts": made,
                        "error_type": type_,
                        "error": message,
                        "timeout_ms": int(timeout.total_seconds() * 1000),
                        "giving_up": giving_up,
                    },
                )
                if giving_up:
                    metrics.step_finished(str(step), "gave_up", workflow.now() - started)
                    raise StepFailed(step, f"{type_}: {message} (attempt {made})") from err
                delay = policy.backoff_for(made)
                if delay:
                    await workflow.sleep(delay)
                continue
            self._attempted(step, name, made, outcome)
            metrics.step_finished(str(step), "success", workflow.now() - started)
            return _value_of(activity, outcome)

    def _count(self, step: str, attempts: int) -> None:
        self.attempts[step] = self.attempts.get(step, 0) + attempts

    def _attempted(self, step: str, name: str, before: int, outcome: Attempted) -> None:
        """Take in a successful call's attempts: its failed ones and the one that worked."""
        self._count(step, outcome.attempt)
        for failed in outcome.failed:
            self.record_error(step, before + failed.attempt, failed.type, failed.message, failed.at)
            # Routine (two in three fail by design, twelve an order), so DEBUG: status,
            # the attempts metric and the final summary carry them. At INFO this was
            # the busiest log line of the order worker.
            workflow.logger.debug(
                "step attempt failed",
                extra={
                    "step": step,
                    "activity": name,
                    "attempt": before + failed.attempt,
                    "error_type": failed.type,
                    "error": failed.message,
                },
            )
        timeouts = sum(1 for f in outcome.failed if f.type == TIMEOUT)
        metrics.attempt(name, "timeout", timeouts)
        metrics.attempt(name, "error", len(outcome.failed) - timeouts)
        metrics.attempt(name, "success", 1)

    async def _run_regular(
        self,
        step: str,
        activity: Callable[[Any, A], Awaitable[R]],
        arg: A,
        policy: StepPolicy,
    ) -> R:
        """The design the measurements rule out, kept to benchmark against (STEP_MODE=regular):
        one regular activity per step, retried by the server."""
        self.attempts[step] = self.attempts.get(step, 0) + 1
        try:
            return await workflow.execute_activity_method(
                activity,
                arg,
                start_to_close_timeout=policy.attempt_timeout,
                schedule_to_close_timeout=policy.budget,
                retry_policy=dataclasses.replace(
                    REGULAR_RETRY, maximum_attempts=policy.max_attempts or 0
                ),
            )
        except ActivityError as err:
            type_, message, _ = _describe(err.cause)
            self.record_error(step, 1, type_, message)
            raise StepFailed(step, f"{type_}: {message}") from err


_ADAPTERS: dict[Callable[..., Any], TypeAdapter[Any]] = {}


def _name_of(activity: Callable[..., Any]) -> str:
    # By name, because only then may the call say what it returns (the envelope).
    name = activity_definition.must_from_callable(activity).name
    assert name is not None, f"{activity} is a dynamic activity"
    return name


def _value_of(activity: Callable[..., Awaitable[R]], outcome: Attempted) -> R:
    """The activity's value as its declared return type (it travelled as plain JSON)."""
    adapter = _ADAPTERS.get(activity)
    if adapter is None:
        adapter = _ADAPTERS[activity] = TypeAdapter(get_type_hints(activity)["return"])
    value: R = adapter.validate_python(outcome.value)
    return value


def _describe(cause: BaseException | None) -> tuple[str, str, bool]:
    """(type, message, retryable) of an attempt's failure."""
    if isinstance(cause, TimeoutError):
        return "Timeout", "attempt exceeded its start-to-close deadline", True
    if isinstance(cause, ApplicationError):
        return cause.type or "ApplicationError", cause.message, not cause.non_retryable
    if cause is None:
        return "Unknown", "activity failed without a cause", True
    return type(cause).__name__, str(cause), True
