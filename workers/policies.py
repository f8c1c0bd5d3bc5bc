"""Every timeout and retry rule of the order process, in one place, with its reason.

The numbers come from measurements on the Temporal dev server 1.32 (see
docs/design.md):

* A server-side activity retry costs about 1 s whatever ``initial_interval``
  is, and a server-side start-to-close timeout does not stop the coroutine:
  ``flaky_call``'s 300 s sleep keeps holding a worker slot. Six steps that fail
  two times in three blow the 15 s budget that way (p50 about 17 s).
* Local activities run in the worker. Their start-to-close timeout is enforced
  there: the attempt's coroutine is cancelled at the deadline, and the next
  attempt starts within milliseconds, with no server round trip.

So every step is a local activity with ONE attempt per call, and the workflow
itself loops over attempts (``workers/steps.py``). That costs nothing extra and
makes each attempt and its error visible to the ``status`` query as it happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from temporalio.common import RetryPolicy

# The SDK must not retry on its own: the step loop does, and counts each attempt.
SINGLE_ATTEMPT = RetryPolicy(maximum_attempts=1)

# "local" is the design; "regular" (one regular activity per step, retried by the
# server) exists only so `make bench` can show what it costs.
StepMode = Literal["local", "regular"]
REGULAR_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=1.0,
    maximum_interval=timedelta(milliseconds=100),
)


@dataclass(frozen=True)
class StepPolicy:
    # Deadline of one attempt. flaky_call either answers at once or sleeps 300 s,
    # and the real work is one small Postgres transaction (a few ms). Each hung
    # attempt costs exactly this, so it dominates latency: 34 % of attempts hang,
    # about six per order. 150 ms is still ~30x the work: at 10 orders/s (machine
    # 75 % busy) timeouts were 1856 of 5539 attempts against 1855 expected from
    # flaky_call alone, i.e. no attempt that did not hang was cut. 250 ms gave
    # p50 1.9-2.2 s and p99 4.8-5.5 s there; 150 ms p50 1.3 s and p99 3.3 s.
    attempt_timeout: timedelta = timedelta(milliseconds=150)
    # After this many timeouts in a row the deadline grows by half each time (up
    # to the cap). Four hangs in a row happen by chance 1.3 % of the time (0.34^4)
    # and then cost one slightly longer attempt; but if the work itself has become
    # slower than the deadline (a loaded database), the step still gets through
    # instead of timing out forever.
    timeouts_before_stretch: int = 4
    stretch_factor: float = 1.5
    attempt_timeout_cap: timedelta = timedelta(seconds=4)
    # flaky_call's failures are independent coin flips: waiting before the next
    # attempt only adds latency, and a step fails 30 times in a row by chance only
    # 6 times in a million (0.67^30). Past that it looks like an outage (the
    # database is down): back off, with durable timers, so as not to hammer it.
    immediate_retries: int = 30
    backoff_initial: timedelta = timedelta(milliseconds=200)
    backoff_max: timedelta = timedelta(seconds=5)
    # None: retry until the budget runs out.
    max_attempts: int | None = None
    # How long a step may keep failing before the order gives up on it. Long
    # enough to ride out a database restart; None means never give up (used for
    # compensation, which must eventually happen).
    budget: timedelta | None = timedelta(minutes=10)

    def timeout_for(self, consecutive_timeouts: int) -> timedelta:
        extra = consecutive_timeouts - self.timeouts_before_stretch + 1
        if extra <= 0:
            return self.attempt_timeout
        stretched = self.attempt_timeout * (self.stretch_factor ** min(extra, 32))
        return min(stretched, self.attempt_timeout_cap)

    def backoff_for(self, failed_attempts: int) -> timedelta:
        slow = failed_attempts - self.immediate_retries
        if slow <= 0:
            return timedelta(0)
        return min(self.backoff_initial * (1 << min(slow - 1, 16)), self.backoff_max)

    def gives_up(self, attempts: int, elapsed: timedelta) -> bool:
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return True
        return self.budget is not None and elapsed >= self.budget


# The five forward steps of an order: receive, validate, charge, prepare, mark shipped.
BUSINESS_STEP = StepPolicy()

# Dispatch has a retry budget of its own: past it the shipping run gives up and
# the parent starts a new run. 12 attempts fail together with probability
# 0.67^12 = 0.8 %, so a second run is rare and a third rarer still (see
# SHIPPING_MAX_ATTEMPTS in settings: three runs all fail 5 in 10 million times).
DISPATCH_STEP = StepPolicy(max_attempts=12)

# Refunds and closing an order undo or finish what was started; giving up would
# leave the order half-done, so they retry for as long as it takes.
COMPENSATION_STEP = StepPolicy(budget=None)


# A local activity holds its workflow task open, and with it an update's acceptance:
# the API would not learn "accepted" until the address is stored. A timer this short
# first lets the task complete (one extra task per address change, a rare request).
ACCEPT_BEFORE_STORING = timedelta(milliseconds=1)
