"""The whole stack as `make run` runs it (workers + API as separate processes),
pointed at the session's PostgreSQL and Temporal through DATABASE_URL and
TEMPORAL_ADDRESS -- the "existing services" mode of `make run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port


@dataclass(frozen=True)
class Stack:
    api_url: str
    order_worker_url: str
    shipping_worker_url: str


@pytest.fixture(scope="session")
def stack(
    postgres_dsn: str, temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    port, order_port, shipping_port = free_port(), free_port(), free_port()
    log_path = tmp_path_factory.mktemp("stack") / "stack.log"
    env = {
        **os.environ,
        "DATABASE_URL": postgres_dsn,
        "TEMPORAL_ADDRESS": temporal_address,
        "API_PORT": str(port),
        "ORDER_WORKER_HTTP_PORT": str(order_port),
        "SHIPPING_WORKER_HTTP_PORT": str(shipping_port),
        "REVIEW_TIMEOUT_SECONDS": "20",
        "LOG_FORMAT": "json",
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orderflow.devstack"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log_path)
        yield Stack(url, f"http://127.0.0.1:{order_port}", f"http://127.0.0.1:{shipping_port}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def api_url(stack: Stack) -> str:
    return stack.api_url


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stack exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"stack not ready in time:\n{log_path.read_text()[-3000:]}")


@pytest.fixture
async def http(api_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api_url, timeout=20)
