"""`make run` itself: the embedded PostgreSQL and Temporal come up, an order goes
through, a crashed worker is restarted, Ctrl-C stops everything, and a second
run finds the data of the first."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from orderflow.devstack.launcher import StackProcess

ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[StackProcess]:
    s = StackProcess(tmp_path / "data", tmp_path / "stack.log", env={"LOG_FORMAT": "json"})
    yield s
    if s.proc is not None and s.proc.poll() is None:
        s.proc.kill()


def test_make_run_stack(stack: StackProcess) -> None:
    stack.start()
    # The banner tells the developer the stack is up (start() waited for it too).
    assert "Orderflow is running" in stack.log_path.read_text()

    # A crashed worker is restarted by the supervisor, with a log line saying so.
    first_pid = stack.pids("order-worker")[-1]
    os.kill(first_pid, signal.SIGKILL)
    stack.wait_until(lambda: len(stack.pids("order-worker")) == 2, 30, "the restart")
    assert any(
        e.get("event") == "component exited; restarting" and e["name"] == "order-worker"
        for e in stack.events()
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
        stack.wait_until(
            lambda: http.get(f"/orders/{oid}/status").json()["state"] == "COMPLETED",
            60,
            "the order to complete",
        )
        # The embedded Temporal's own metrics, where the banner and `make observe` say.
        metrics = http.get(f"http://127.0.0.1:{stack.ports.temporal_metrics}/metrics")
        assert metrics.status_code == 200
        assert "service_requests" in metrics.text and "StartWorkflowExecution" in metrics.text
    assert f"127.0.0.1:{stack.ports.temporal_metrics}/metrics" in stack.log_path.read_text()

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
