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

So every step is a local activity, and the attempts of a step follow each other
inside the call, each cut at its own deadline (``workers/attempts.py``), with no
server round trip and none of the SDK's per-call work between them. Each call
reports its attempts back, so ``status`` shows them a call at a time.

Each of those calls is a marker in the workflow's history, though, and the
orders have no execution timeout (compensation must never be cut short). A
step that keeps failing for as long as an outage lasts would grow the history
without bound, and a refund during a day-long database outage would end up at
Temporal's history limits. So a step that has failed more often than chance
explains is handed to ONE regular activity, retried by the Temporal server:
server-side retries add no history events, whatever their number, and their
~1 s cost does not matter once the database is down anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from temporalio.common import RetryPolicy

# The SDK must not retry on its own: the step loop does, and counts each attempt.
SINGLE_ATTEMPT = RetryPolicy(maximum_attempts=1)

# A step handed to the server during an outage (see the module's docstring). The first
# retry after about 1 s (the server's floor here), then doubling: a database that is
# down for long gets one attempt per order every 10 s, and an order resumes at most
# 10 s after it is back. No attempt limit: StepPolicy.max_attempts/budget still apply.
OUTAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)

# "local" is the design. "regular" hands every step to the server at its first attempt,
# retried as fast as the server goes: the design the measurements rule out, so that
# `make bench` can show what it costs. The hand-over itself is production code (above).
StepMode = Literal["local", "regular"]
REGULAR_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=1.0,
    maximum_interval=timedelta(milliseconds=100),
)


# Added to a call's deadlines: the work itself (a few ms) and the scheduling around
# it. A call that overruns it is counted as one timed-out attempt.
CALL_SLACK = timedelta(seconds=1)


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
    # attempt only adds latency, so the local attempts follow each other at once. A
    # step fails 30 times in a row by chance only 6 times in a million (0.67^30);
    # past that it looks like an outage (the database is down) and the step is handed
    # to the server (OUTAGE_RETRY), which backs off and keeps the history bounded:
    # at most this many attempts (and a marker per call) per step, whatever the
    # outage's length.
    local_attempts: int = 30
    # Attempts made one after the other inside one local-activity call
    # (workers/attempts.py): each call costs the worker ~2.7 ms of CPU in the SDK,
    # so one call per attempt spent most of its CPU there. A step needs more than 8
    # attempts 4 % of the time (0.67^8), and then simply makes another call. The
    # workflow learns of a call's attempts when it returns, so this also bounds how
    # stale ``status`` is while a step keeps failing: 8 deadlines, 1.2 s.
    attempts_per_call: int = 8
    # The deadline of each server-side attempt once handed over: attempts are at
    # least a second apart then, so a long one costs little, and a database that
    # is up but slow still gets through.
    outage_attempt_timeout: timedelta = timedelta(seconds=4)
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

    def call_timeout(self, attempts: int, consecutive_timeouts: int) -> timedelta:
        """Deadline of one call of ``attempts`` attempts: every one of them timing out,
        plus CALL_SLACK for the work and the hand-offs around them."""
        deadlines = (self.timeout_for(consecutive_timeouts + k) for k in range(attempts))
        return sum(deadlines, CALL_SLACK)

    def hands_over(self, failed_attempts: int) -> bool:
        return failed_attempts >= self.local_attempts

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


# Storing an address change is compensation-like: the customer was told it was
# accepted, so it is stored however long that takes.
ADDRESS_STEP = COMPENSATION_STEP

# A timer this short completes the workflow task before the next local activity. Local
# activities run inside the task that decided to run them; until it completes, what it
# decided from (an update it accepted) is not in the history. So an update's acceptance
# reaches the API at once, and nothing is refunded or closed on a decision that a new
# worker, replaying the history, would not make (one extra task per address change and
# per order that ends cancelled or failed).
RECORD_BEFORE_ACTING = timedelta(milliseconds=1)
