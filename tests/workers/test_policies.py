"""The retry/timeout rules in workers/policies.py."""

from __future__ import annotations

from datetime import timedelta

from workers.flaky import FAILURE_BELOW, HANG_BELOW
from workers.policies import (
    BUSINESS_STEP,
    COMPENSATION_STEP,
    DISPATCH_STEP,
    OUTAGE_RETRY,
    StepPolicy,
)

MS = timedelta(milliseconds=1)


def test_attempt_deadline_stretches_only_after_repeated_timeouts() -> None:
    p = StepPolicy()
    assert [p.timeout_for(n) / MS for n in range(7)] == [150, 150, 150, 150, 225, 337.5, 506.25]
    assert p.timeout_for(50) == p.attempt_timeout_cap


# flaky_call hangs an attempt with this probability, independently of the others.
HANG = HANG_BELOW - FAILURE_BELOW
# Attempts an order makes, about: six steps, three attempts each on average.
ATTEMPTS_PER_ORDER = 18


def test_hangs_in_a_row_by_chance_cannot_cost_an_order_its_15_s() -> None:
    # Regression: `make bench` of 2026-12-07 23:58, an order below the knee took 22 s:
    # its last step met 14 hangs in a row, and the deadline, grown to 4 s, spent 19.7 s.
    # Stretched deadlines must not turn a run of chance hangs into a missed promise.
    p = BUSINESS_STEP
    spent, in_a_row = timedelta(0), 0
    while spent < timedelta(seconds=10):  # what one step may take of an order's 15 s
        spent += p.timeout_for(in_a_row)
        in_a_row += 1
    chance_per_order = ATTEMPTS_PER_ORDER * HANG**in_a_row
    assert chance_per_order < 1e-6, f"{in_a_row} hangs in a row spend 10 s: {chance_per_order:.1e}"


def test_a_calls_deadline_covers_every_attempt_timing_out_plus_slack() -> None:
    p = StepPolicy()
    assert p.call_timeout(1, 0) / MS == 150 + 1000
    # The fourth timeout in a row and the ones after it are stretched.
    assert p.call_timeout(5, 0) / MS == 4 * 150 + 225 + 1000
    assert p.call_timeout(2, 3) / MS == 150 + 225 + 1000


def test_chance_failures_stay_local_an_outage_goes_to_the_server() -> None:
    p = StepPolicy()
    assert not any(p.hands_over(n) for n in range(1, 30))
    assert p.hands_over(30)
    # Dispatch gives up (a new shipping run) before it could be handed over.
    assert DISPATCH_STEP.max_attempts is not None
    assert DISPATCH_STEP.max_attempts < DISPATCH_STEP.local_attempts


def test_the_outage_retry_backs_off_to_a_bounded_interval() -> None:
    assert OUTAGE_RETRY.maximum_attempts == 0  # the step's own budget decides
    assert OUTAGE_RETRY.backoff_coefficient > 1
    assert OUTAGE_RETRY.maximum_interval == timedelta(seconds=10)


def test_giving_up() -> None:
    assert not BUSINESS_STEP.gives_up(1000, timedelta(minutes=9))
    assert BUSINESS_STEP.gives_up(1, timedelta(minutes=10))
    assert not DISPATCH_STEP.gives_up(11, timedelta(0))
    assert DISPATCH_STEP.gives_up(12, timedelta(0))
    assert not COMPENSATION_STEP.gives_up(10**6, timedelta(days=30))
