"""Is this worker's poller alive? Liveness that means it (issue 29).

A worker process can keep answering HTTP while it does no work at all: the SDK
retries failed polls for ever (measured: a Temporal that stays away leaves the
worker retrying, never failing), and a poll on a connection that went dead
without a reset can hang. Kubernetes should restart such a worker; it should not
restart one that is merely idle or waiting out a short Temporal blip.

What tells them apart is whether long polls come *back* from Temporal: an idle
worker's polls return empty at the end of every long poll (60 s on a default
server, sooner with several pollers), a busy worker's return tasks, and a
worker that cannot reach Temporal (or whose polls hang) gets neither. The SDK
counts both kinds of return (``temporal_workflow_task_queue_poll_empty`` and
``..._poll_succeed``, every worker here runs workflows) in the metrics it
already serves to this process (workers/telemetry.py); this watch samples them
and reports not-live once none has come back for ``stale_after`` seconds.

So the bound: not live at most ``stale_after`` + one sample after the last poll
came back, and the kubelet restarts it after its failureThreshold more probes.
A Temporal outage shorter than ``stale_after`` (its restart, a blip) leaves every
worker live; a longer one restarts them, which cannot fix Temporal but costs
nothing there (the orders wait in Temporal either way) and does fix what a
process cannot fix in place: a wedged connection, a moved address, a rotated
credential. A stuck event loop needs no watch: /healthz runs on that loop and
stops answering. A worker whose SDK worker failed (a fatal poll error) exits:
``async with Worker`` raises it out of workers/process.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from prometheus_client.parser import text_string_to_metric_families

from orderflow.log import get_logger

log = get_logger(__name__)

# Not live once no poll has come back for this long: past an idle worker's long polls
# (60 s on a default server) with room for two, and far past a Temporal restart (seconds,
# tests/faults), so only a worker that cannot poll is restarted.
STALE_AFTER_SECONDS = 150.0

# Counters of long polls that came back from Temporal, with or without a task.
POLL_RETURNS = (
    "temporal_workflow_task_queue_poll_empty",
    "temporal_workflow_task_queue_poll_succeed",
)


def polls_returned(text: str) -> float:
    """How many workflow-task polls have come back so far, by the SDK's counters."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.removesuffix("_total") in POLL_RETURNS:
                total += sample.value
    return total


class PollWatch:
    def __init__(
        self,
        sdk_metrics: Callable[[], Awaitable[bytes]],
        stale_after: float = STALE_AFTER_SECONDS,
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sdk_metrics = sdk_metrics
        self.stale_after = stale_after
        self.interval = interval if interval is not None else min(5.0, stale_after / 4)
        self._clock = clock
        self._returned = -1.0
        self._last_return: float | None = None  # None: not watching (starting, draining)

    def start(self) -> None:
        """The worker polls from now on: a poll must come back within ``stale_after``."""
        self._last_return = self._clock()

    def stop(self) -> None:
        """Draining: polling stops on purpose."""
        self._last_return = None

    def not_live(self) -> str | None:
        """Why the worker is not live, or None while it is."""
        if self._last_return is None:
            return None
        silent = self._clock() - self._last_return
        if silent > self.stale_after:
            return f"no poll came back from Temporal for {silent:.0f} s"
        return None

    async def sample(self) -> None:
        try:
            returned = polls_returned((await self._sdk_metrics()).decode())
        except Exception as err:  # the SDK's listener is in-process: say so, keep watching
            log.warning("poll watch could not read the SDK's metrics", error=repr(err))
            return
        if returned != self._returned:
            self._returned = returned
            if self._last_return is not None:
                self._last_return = self._clock()

    async def run(self) -> None:
        reported = False
        while True:
            await self.sample()
            reason = self.not_live()
            if reason and not reported:
                log.error("worker not live", reason=reason)
            reported = reason is not None
            await asyncio.sleep(self.interval)
