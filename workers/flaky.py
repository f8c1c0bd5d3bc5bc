"""The deliberately unreliable dependency every business function calls first.

Behaviour is fixed by the product specification and must not change:
one draw of ``random.random()``; below 0.33 it raises, below 0.67 it hangs for
300 s (the caller's timeout must cut it), otherwise it returns at once.
``FLAKY=off`` (see settings) turns it into a no-op for debugging only.
"""

from __future__ import annotations

import asyncio
import random

from orderflow.forced_failure import FORCED_FAILURE as FORCED_FAILURE

FAILURE_BELOW = 0.33
HANG_BELOW = 0.67
HANG_SECONDS = 300

_enabled = True


def set_enabled(enabled: bool) -> None:
    """Called once by each worker from its settings (FLAKY=on|off)."""
    global _enabled
    _enabled = enabled


def is_enabled() -> bool:
    return _enabled


async def flaky_call() -> None:
    if not _enabled:
        return
    draw = random.random()
    if draw < FAILURE_BELOW:
        raise RuntimeError(FORCED_FAILURE)
    if draw < HANG_BELOW:
        await asyncio.sleep(HANG_SECONDS)
