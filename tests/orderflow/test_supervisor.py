"""The devstack supervisor with real child processes: a crashing component is
restarted with exponential backoff, and a hold file keeps it down until removed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from orderflow.devstack.supervisor import Component, Supervisor

CRASH = [sys.executable, "-c", "import sys; sys.exit(3)"]
SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]


async def until(check: Callable[[], bool], within: float = 20) -> None:
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


async def test_crash_loop_restarts_with_doubling_backoff() -> None:
    sup = Supervisor(out=lambda _line: None, backoff_initial=0.05)
    await sup.start(Component("crashy", CRASH))
    try:
        await until(lambda: sup.restarts.get("crashy", 0) >= 4)
    finally:
        await sup.stop()
    assert sup.delays["crashy"][:4] == [0.05, 0.1, 0.2, 0.4]


async def test_hold_file_keeps_a_component_down_until_removed(tmp_path: Path) -> None:
    sup = Supervisor(out=lambda _line: None, hold_dir=tmp_path, backoff_initial=0.05)
    await sup.start(Component("worker", SLEEP))
    try:
        first = sup.pid("worker")
        assert first is not None
        (tmp_path / "worker").touch()
        os.kill(first, signal.SIGKILL)
        await until(lambda: sup.restarts.get("worker") == 1)
        # Held: well past the backoff, nothing has been started in its place.
        await asyncio.sleep(0.5)
        assert sup.pid("worker") is None
        (tmp_path / "worker").unlink()
        await until(lambda: sup.pid("worker") not in (None, first))
    finally:
        await sup.stop()
    assert sup.pid("worker") is None
