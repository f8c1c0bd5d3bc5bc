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
    # As on a fresh machine: no payload keys configured (the tests' own is removed).
    s = StackProcess(
        tmp_path / "data", tmp_path / "stack.log", env={"LOG_FORMAT": "json", "PAYLOAD_KEYS": None}
    )
    yield s
    if s.proc is not None and s.proc.poll() is None:
        s.proc.kill()


def test_make_run_stack(stack: StackProcess) -> None:
    stack.start()
    # The banner tells the developer the stack is up (start() waited for it too).
    assert "Orderflow is running" in stack.log_path.read_text()
    # Without PAYLOAD_KEYS: a development key, made once in the data directory, said loudly.
    dev_key = stack.data_dir / "payload-dev-key"
    key = dev_key.read_text()
    assert any(
        e.get("level") == "warning" and "DEVELOPMENT key" in e.get("event", "")
        for e in stack.events()
    )
    assert f"DEVELOPMENT payload key {dev_key}" in stack.log_path.read_text()

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

    # A second run keeps the data of the first, and the key its histories were written under.
    stack.start()
    assert dev_key.read_text() == key
    with httpx.Client(base_url=stack.url, timeout=20) as http:
        status = http.get(f"/orders/{oid}/status").json()
    assert status["state"] == "COMPLETED" and status["source"] == "database"
    assert stack.stop() == 0
