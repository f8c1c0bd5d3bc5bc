"""`make run` itself: the embedded PostgreSQL and Temporal come up, an order goes
through, a crashed worker is restarted, Ctrl-C stops everything, and a second
run finds the data of the first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import free_port

ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}


class Stack:
    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.api_port = free_port()
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")
        }
        self.env.update(
            DATA_DIR=str(data_dir),
            API_PORT=str(self.api_port),
            EMBEDDED_POSTGRES_PORT=str(free_port()),
            EMBEDDED_TEMPORAL_PORT=str(free_port()),
            EMBEDDED_TEMPORAL_UI_PORT=str(free_port()),
            ORDER_WORKER_HTTP_PORT=str(free_port()),
            SHIPPING_WORKER_HTTP_PORT=str(free_port()),
            LOG_FORMAT="json",
        )
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orderflow.devstack"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait(lambda: httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200, 120)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text().splitlines():
            payload = line.split("| ", 1)[1] if "| " in line else line
            try:
                events.append(json.loads(payload))
            except ValueError:
                continue
        return events

    def pids(self, name: str) -> list[int]:
        return [
            e["pid"]
            for e in self.log_events()
            if e.get("event") == "component started" and e.get("name") == name
        ]

    def wait(self, check: Any, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"stack exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if check():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"timed out:\n{self.log_path.read_text()[-3000:]}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path / "data", tmp_path / "stack.log")
    yield s
    if s.proc is not None and s.proc.poll() is None:
        s.proc.kill()


def test_make_run_stack(stack: Stack) -> None:
    stack.start()
    # The API answers /readyz a moment before the supervisor's own probe sees it
    # and prints the banner: wait for the line instead of racing it.
    stack.wait(lambda: "Orderflow is running" in stack.log_path.read_text(), 10)

    # A crashed worker is restarted by the supervisor, with a log line saying so.
    first_pid = stack.pids("order-worker")[-1]
    os.kill(first_pid, signal.SIGKILL)
    stack.wait(lambda: len(stack.pids("order-worker")) == 2, 30)
    assert any(
        e.get("event") == "component exited; restarting" and e["name"] == "order-worker"
        for e in stack.log_events()
    )

    # An order goes through the restarted worker.
    oid = f"dev-{int(time.time())}"
    with httpx.Client(base_url=stack.url, timeout=20) as http:
        assert (
            http.post(
                f"/orders/{oid}/start", json={"payment_id": f"pay-{oid}", "address": ADDRESS}
            ).status_code
            == 202
        )
        assert http.post(f"/orders/{oid}/signals/approve").status_code == 202
        stack.wait(lambda: http.get(f"/orders/{oid}/status").json()["state"] == "COMPLETED", 60)

    assert stack.proc is not None
    children = psutil.Process(stack.proc.pid).children(recursive=True)
    assert stack.stop() == 0
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running: {alive}"

    # A second run keeps the data of the first.
    stack.start()
    with httpx.Client(base_url=stack.url, timeout=20) as http:
        status = http.get(f"/orders/{oid}/status").json()
    assert status["state"] == "COMPLETED" and status["source"] == "database"
    assert stack.stop() == 0
