"""A private `make run` stack as a child process, for tests and `make bench`.

`python -m orderflow.devstack` on ports the OS just handed out and in the caller's
data directory, so it never collides with a `make run`, another test session or a
colleague's benchmark on the same machine. Output goes to a log file the caller
names: the supervisor's and every component's lines, which tests read back.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

import httpx

# The supervisor prints this once every component has passed its readiness check.
BANNER = b"Orderflow is running"
# Inherited, these would point the stack at someone else's services instead of its
# embedded ones; a caller that wants external services passes them explicitly.
NOT_INHERITED = ("DATABASE_URL", "TEMPORAL_ADDRESS")


def free_port() -> int:
    """A loopback port nobody listens on right now (it stays free until someone binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Ports:
    api: int
    postgres: int
    temporal: int
    temporal_ui: int
    temporal_metrics: int
    order_worker: int
    shipping_worker: int

    @classmethod
    def free(cls) -> Ports:
        return cls(*(free_port() for _ in fields(cls)))

    def env(self) -> dict[str, str]:
        names = (
            "API_PORT",
            "EMBEDDED_POSTGRES_PORT",
            "EMBEDDED_TEMPORAL_PORT",
            "EMBEDDED_TEMPORAL_UI_PORT",
            "EMBEDDED_TEMPORAL_METRICS_PORT",
            "ORDER_WORKER_HTTP_PORT",
            "SHIPPING_WORKER_HTTP_PORT",
        )
        return dict(zip(names, map(str, astuple(self)), strict=True))


class StackNotReady(RuntimeError):
    pass


class StackProcess:
    """The whole stack in one child process: start, wait for it, read its log, stop it.

    ``env`` is added to the inherited environment; a ``None`` value removes the
    variable instead (say, a developer's FLAKY=off that would change a drill).
    """

    def __init__(
        self, data_dir: Path, log_path: Path, env: Mapping[str, str | None] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.ports = Ports.free()
        self.env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        self.env.update(DATA_DIR=str(data_dir), **self.ports.env())
        for key, value in (env or {}).items():
            if value is None:
                self.env.pop(key, None)
            else:
                self.env[key] = value
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    def start(self, within: float = 120) -> None:
        """Start and return once ready; a stack that does not get ready is stopped."""
        # Appended, so a restarted stack keeps the earlier run's lines; readiness
        # looks only at what this run wrote.
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orderflow.devstack"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self.wait_until(lambda: self._ready(offset), within, "the stack to be ready")
        except StackNotReady:
            self.stop()
            raise

    def _ready(self, offset: int) -> bool:
        # Both: the banner says every component passed the supervisor's checks (it
        # comes a moment after /readyz first answers), /readyz that the URL callers
        # use answers.
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            if BANNER not in log.read():
                return False
        return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200

    def wait_until(self, check: Callable[[], bool], within: float, what: str) -> None:
        """Poll ``check`` (an HTTP error counts as "not yet"); fail at once if the stack exits."""
        if self.proc is None:
            raise StackNotReady(f"waiting for {what}, but the stack was never started")
        deadline = time.monotonic() + within
        while True:
            code = self.proc.poll()
            if code is not None:
                raise self._failure(f"stack exited with code {code} while waiting for {what}")
            try:
                if check():
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise self._failure(f"waited {within:g} s for {what}, in vain")
            time.sleep(0.3)

    def _failure(self, message: str) -> StackNotReady:
        return StackNotReady(f"{message}; see {self.log_path}:\n{self.tail()}")

    def stop(self, within: float = 60) -> int | None:
        """SIGINT, like Ctrl-C on `make run`: the supervisor stops its components in
        order. Killed only if it hangs (its children then get SIGTERM from the kernel,
        see supervisor._die_with_parent). Returns the exit code; None if never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines of the supervisor and the components (``name | {...}``)."""
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            payload = line.split("| ", 1)[1] if "| " in line else line
            try:
                event = json.loads(payload)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def pids(self, name: str) -> list[int]:
        """Every pid a component has had, oldest first (one more per restart)."""
        return [
            e["pid"]
            for e in self.events()
            if e.get("event") == "component started" and e.get("name") == name
        ]
