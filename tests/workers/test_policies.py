"""The retry/timeout rules in workers/policies.py."""

from __future__ import annotations

from datetime import timedelta

from workers.policies import BUSINESS_STEP, COMPENSATION_STEP, DISPATCH_STEP, StepPolicy

MS = timedelta(milliseconds=1)


def test_attempt_deadline_stretches_only_after_a_call_ended_in_a_timeout() -> None:
    p = StepPolicy()
    assert [p.timeout_for(n) / MS for n in range(4)] == [150, 225, 337.5, 506.25]
    assert p.timeout_for(50) == p.attempt_timeout_cap


def test_the_sdk_retries_within_a_call_at_once_and_never_past_a_step_budget() -> None:
    retry = BUSINESS_STEP.retry_within_call(0)
    assert retry.maximum_attempts == BUSINESS_STEP.attempts_per_call == 10
    assert retry.initial_interval == retry.maximum_interval == MS
    assert retry.backoff_coefficient == 1.0
    # Dispatch may make 12 attempts in all: a second call gets the 2 that are left.
    assert DISPATCH_STEP.retry_within_call(0).maximum_attempts == 10
    assert DISPATCH_STEP.retry_within_call(10).maximum_attempts == 2
    assert COMPENSATION_STEP.retry_within_call(10**6).maximum_attempts == 10


def test_no_backoff_for_independent_failures_then_exponential() -> None:
    p = StepPolicy()
    assert all(p.backoff_for(n) == timedelta(0) for n in range(1, 31))
    assert [p.backoff_for(n) / MS for n in (31, 32, 33)] == [200, 400, 800]
    assert p.backoff_for(100) == p.backoff_max


def test_giving_up() -> None:
    assert not BUSINESS_STEP.gives_up(1000, timedelta(minutes=9))
    assert BUSINESS_STEP.gives_up(1, timedelta(minutes=10))
    assert not DISPATCH_STEP.gives_up(11, timedelta(0))
    assert DISPATCH_STEP.gives_up(12, timedelta(0))
    assert not COMPENSATION_STEP.gives_up(10**6, timedelta(days=30))
