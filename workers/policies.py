"""Every timeout and retry rule of the order process, in one place, with its reason.

Every step is a local activity whose attempts follow each other inside the call,
each cut at its own deadline in the worker (``workers/attempts.py``): a server-side
retry costs about a second and a server-side timeout does not stop a hung
coroutine, so six steps failing two times in three would not fit in 15 s.

Each call is a marker in the history and orders have no execution timeout
(compensation must not be cut short), so a step that fails more often than chance
explains (an outage) is handed to ONE regular activity retried by the server:
those retries add no history events however long the outage lasts.

Reasons and evidence: docs/design.md, docs/decisions/0001 and 0005.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

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


# Added to a call's deadlines: the work itself (a few ms) and the scheduling around
# it. A call that overruns it is counted as one timed-out attempt.
CALL_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class StepPolicy:
    # Deadline of one attempt. Every hung attempt costs exactly this (about six an
    # order), so it dominates latency; the real work is one small transaction of a
    # few ms, so 150 ms cuts only the attempts that hang (docs/design.md).
    attempt_timeout: timedelta = timedelta(milliseconds=150)
    # After this many timeouts in a row the deadline grows by half each time (up
    # to the cap), so that work that has become slower than the deadline (a loaded
    # database) still gets through. By chance (0.34^4, 1.3 %) it costs one longer attempt.
    timeouts_before_stretch: int = 4
    stretch_factor: float = 1.5
    # Chance hangs come in runs too, each then costing the cap: at 1 s, a step spends
    # 10 s of the order's 15 only after 16 hangs in a row (once in 1.7 million orders),
    # and 30 held attempts take 24 s, inside a worker's 30 s grace (decision 0001).
    # Work slower than 1 s waits for the server's retries.
    attempt_timeout_cap: timedelta = timedelta(seconds=1)
    # flaky_call's failures are independent, so waiting between attempts only adds
    # latency. 30 failures in a row happen by chance 6 times in a million (0.67^30);
    # past that it is an outage, and the step goes to the server (OUTAGE_RETRY), which
    # backs off and keeps the history bounded whatever the outage's length.
    local_attempts: int = 30
    # Attempts inside one local-activity call (workers/attempts.py): each call costs
    # the worker's SDK CPU, so attempts share one. The workflow learns of a call's
    # attempts when it returns, so this also bounds how stale ``status`` is while a
    # step keeps failing (8 deadlines, 1.2 s). A step needs another call 4 % of the time.
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
