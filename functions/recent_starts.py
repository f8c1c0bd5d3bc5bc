"""Orders this API process started moments ago: their status needs no call to Temporal.

Between an accepted start and the first step's commit the database has no row for
the order. Asking Temporal (DescribeWorkflowExecution) whether it exists would cost
the busiest server a read of the workflow's state for every poll of a new order;
Temporal's answer to the start already said the workflow runs, and for a few seconds
that is still the answer. A read that reaches another replica, or comes later, asks
Temporal (docs/decisions/0004).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime

# Long enough to cover the first step of nearly every order (about a second, several
# under load: attempts that hang are cut at their deadline and tried again), short
# enough that a workflow ended from outside before it stored anything (terminated by
# an operator) is not reported as being received for long.
MEMORY_SECONDS = 5.0


class RecentStarts:
    """Order id -> when this process started it, forgotten after ``memory_seconds``."""

    def __init__(self, memory_seconds: float = MEMORY_SECONDS) -> None:
        self._memory = memory_seconds
        # In the order they were added, so the oldest are pruned from the front.
        self._started: OrderedDict[str, tuple[float, datetime]] = OrderedDict()

    def add(self, order_id: str, started_at: datetime) -> None:
        now = time.monotonic()
        self._forget(now)
        self._started[order_id] = (now, started_at)
        self._started.move_to_end(order_id)

    def started_at(self, order_id: str) -> datetime | None:
        """When this process started ``order_id``, if that was moments ago."""
        self._forget(time.monotonic())
        entry = self._started.get(order_id)
        return entry[1] if entry is not None else None

    def _forget(self, now: float) -> None:
        while self._started and next(iter(self._started.values()))[0] < now - self._memory:
            self._started.popitem(last=False)
