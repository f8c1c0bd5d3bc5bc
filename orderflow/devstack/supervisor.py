"""A small process supervisor for the local stack (what Kubernetes does in a cluster).

Starts each component as a child process, streams its output with a
``name |`` prefix, restarts it with exponential backoff when it exits on its
own, and stops everything in reverse order on shutdown (SIGTERM, then SIGKILL
after a grace period). Written here rather than taken from honcho or
supervisord because it must also wait for readiness between components and
run as part of the same Python process that prepares the services.

Fault drills: while a file named after a component exists in the hold
directory (``DATA_DIR/hold/<name>`` under `make run`), a component that exits
is not restarted; deleting the file lets the supervisor restart it. That is
how a test keeps, say, the shipping worker down for 20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orderflow.log import get_logger

log = get_logger("supervisor")

RESTART_BACKOFF_INITIAL = 1.0
RESTART_BACKOFF_MAX = 30.0
# A component that stayed up this long is considered healthy again: its next
# crash restarts it after the initial backoff, not the grown one.
STABLE_AFTER_SECONDS = 30.0
HOLD_POLL_SECONDS = 0.2


@dataclass
class Component:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    # Awaited after each (re)start; the next component starts only once it returns.
    ready: Callable[[], Awaitable[None]] | None = None
    stop_grace_seconds: float = 15.0


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the supervisor dies, however it dies
    (even SIGKILL), so a crashed `make run` never leaves orphans holding its ports."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


class Supervisor:
    def __init__(
        self,
        out: Callable[[str], None] | None = None,
        *,
        hold_dir: Path | None = None,
        backoff_initial: float = RESTART_BACKOFF_INITIAL,
    ) -> None:
        self.hold_dir = hold_dir
        self.backoff_initial = backoff_initial
        self._components: list[Component] = []
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pumps: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._out = out or (lambda line: print(line, flush=True))  # noqa: T201
        self.restarts: dict[str, int] = {}
        # The delay chosen before each restart, per component (backoff, as logged).
        self.delays: dict[str, list[float]] = {}

    async def start(self, component: Component) -> None:
        """Start a component, wait until it is ready, and keep it running."""
        self._components.append(component)
        await self._spawn(component)
        if component.ready is not None:
            await component.ready()
        self._tasks.append(asyncio.create_task(self._watch(component)))

    async def _spawn(self, component: Component) -> None:
        env = {**os.environ, **component.env}
        proc = await asyncio.create_subprocess_exec(
            *component.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            user=component.user,
            # Own process group: Ctrl-C in the terminal reaches the supervisor only,
            # which then stops the children in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._procs[component.name] = proc
        self._pumps.add(asyncio.create_task(self._pump(component.name, proc)))
        log.info("component started", name=component.name, pid=proc.pid)

    async def _pump(self, name: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        width = max(len(c.name) for c in self._components)
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._out(f"{name:<{width}} | {line}")

    def held(self, name: str) -> bool:
        return self.hold_dir is not None and (self.hold_dir / name).exists()

    async def _wait_while_held(self, name: str) -> None:
        if not self.held(name):
            return
        log.warning(
            "restart held until the hold file is removed", name=name, hold_dir=str(self.hold_dir)
        )
        # Polled rather than watched: a file is what a person or a test can create.
        while True:
            if self._stopping or not self.held(name):
                break
            await asyncio.sleep(HOLD_POLL_SECONDS)
        log.info("hold released", name=name)

    async def _watch(self, component: Component) -> None:
        backoff = self.backoff_initial
        while True:
            proc = self._procs[component.name]
            started = time.monotonic()
            code = await proc.wait()
            if self._stopping:
                return
            if time.monotonic() - started > STABLE_AFTER_SECONDS:
                backoff = self.backoff_initial
            self.restarts[component.name] = self.restarts.get(component.name, 0) + 1
            self.delays.setdefault(component.name, []).append(backoff)
            log.warning(
                "component exited; restarting",
                name=component.name,
                exit_code=code,
                restart_in_seconds=backoff,
                restarts=self.restarts[component.name],
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX)
            await self._wait_while_held(component.name)
            if self._stopping:
                return
            await self._spawn(component)
            if component.ready is not None:
                try:
                    await component.ready()
                except Exception as err:  # keep supervising; the next exit restarts it again
                    log.error(
                        "component not ready after restart", name=component.name, error=str(err)
                    )

    def pid(self, name: str) -> int | None:
        proc = self._procs.get(name)
        return proc.pid if proc and proc.returncode is None else None

    async def stop(self) -> None:
        """Stop components in reverse start order, each within its grace period."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for component in reversed(self._components):
            proc = self._procs.get(component.name)
            if proc is None or proc.returncode is not None:
                continue
            log.info("stopping component", name=component.name)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), component.stop_grace_seconds)
            except TimeoutError:
                log.warning("component did not stop in time; killing", name=component.name)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        log.info("all components stopped")
