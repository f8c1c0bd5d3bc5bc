"""Gates: the test decides how each business step's attempts end, and when.

Every step of a model order runs through a same-named step double (the real attempt
loop of workers/attempts.py runs it) that asks its gate first. A gate is keyed by
(order, step, key), the key telling apart the attempts that belong to different
things: the n-th address change, the n-th shipping run.

* ``held`` (the default): the attempt fails after ``HELD_SECONDS`` with a retryable
  error, as a flaky call does; the step keeps trying. Held long enough, the step is
  handed to the server's retries, as in an outage (workers/policies.py).
* ``open``: attempts do the real database work and succeed.
* ``broken``: attempts fail for good: a business rule (validation) or a carrier that
  keeps refusing (dispatch gives up after its attempts, and shipping runs again).
  Draining an order opens its held gates, never its broken ones.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from temporalio.exceptions import ApplicationError

Mode = Literal["held", "open", "broken"]
GateKey = tuple[str, str, int]

# Shorter than an attempt's 150 ms deadline: a held attempt ends as an error, not as a
# timeout, so deadlines do not stretch and an update waits at most a call for its task.
HELD_SECONDS = 0.1


class HeldAttempt(RuntimeError):
    """A held attempt: retryable, as flaky_call's forced failure."""


class CarrierRefused(RuntimeError):
    """A dispatch attempt of a broken shipping run."""


class Gates:
    def __init__(self) -> None:
        self._modes: dict[GateKey, Mode] = {}
        self._wake: dict[GateKey, asyncio.Event] = {}
        self.asked: set[GateKey] = set()  # gates some attempt has asked
        self.draining: set[str] = set()  # orders whose every gate is open

    def mode(self, key: GateKey) -> Mode:
        mode = self._modes.get(key, "held")
        return "open" if mode == "held" and key[0] in self.draining else mode

    def set(self, key: GateKey, mode: Mode) -> None:
        self._modes[key] = mode
        self._event(key).set()

    def drain(self, order_id: str) -> None:
        self.draining.add(order_id)
        for key, event in self._wake.items():
            if key[0] == order_id:
                event.set()

    def held(self, order_id: str) -> list[GateKey]:
        """The order's gates that attempts are waiting at: its steps under way."""
        return sorted(k for k in self.asked if k[0] == order_id and self.mode(k) == "held")

    async def attempt(self, order_id: str, step: str, key: int = 0) -> None:
        """Return when the attempt may do its work; raise when it fails."""
        gate = (order_id, step, key)
        self.asked.add(gate)
        mode = self.mode(gate)
        if mode == "held":
            event = self._event(gate)
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), HELD_SECONDS)
            except TimeoutError:
                raise HeldAttempt(f"{step} held by the test") from None
            mode = self.mode(gate)
        if mode == "broken":
            if step == "order_validated":
                # As the real step reports a broken business rule: not worth retrying.
                raise ApplicationError(
                    "the model broke validation", type="InvalidOrder", non_retryable=True
                )
            raise CarrierRefused(f"{step} refused by the model")
        if mode == "held":
            raise HeldAttempt(f"{step} held by the test")

    def _event(self, key: GateKey) -> asyncio.Event:
        return self._wake.setdefault(key, asyncio.Event())
