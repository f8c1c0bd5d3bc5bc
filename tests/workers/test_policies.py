"""The retry/timeout rules in workers/policies.py."""

from __future__ import annotations

from datetime import timedelta

from workers.policies import BUSINESS_STEP, COMPENSATION_STEP, DISPATCH_STEP, StepPolicy

MS = timedelta(milliseconds=1)


def test_attempt_deadline_stretches_only_after_repeated_timeouts() -> None:
    p = StepPolicy()
    assert [p.timeout_for(n) / MS for n in range(7)] == [150, 150, 150, 150, 225, 337.5, 506.25]
    assert p.timeout_for(50) == p.attempt_timeout_cap


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
