"""The API drains on SIGTERM (a rollout, a scale-down): it stops accepting
connections and answers the requests it holds, the longest of which is a status
long poll (``wait`` up to WAIT_MAX_SECONDS), before it exits.

The real ``python -m functions`` process on the session's PostgreSQL and Temporal.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from functions.__main__ import GRACEFUL_SHUTDOWN_SECONDS
from functions.routes.orders import WAIT_MAX_SECONDS
from orderflow import store
from orderflow.devstack.launcher import free_port
from orderflow.models import OrderState

# Past uvicorn's default-like 10 s, so that a drain shorter than a long poll fails here.
CHANGE_AFTER_SIGTERM_SECONDS = 12.0
ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}


@pytest.fixture
def api(postgres_dsn: str, temporal_address: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": postgres_dsn,
        "TEMPORAL_ADDRESS": temporal_address,
        "API_PORT": str(port),
        "API_HOST": "127.0.0.1",
        "LOG_FORMAT": "json",
    }
    env.pop("API_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "functions"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("the API never got ready")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_the_drain_outlasts_the_longest_request() -> None:
    assert GRACEFUL_SHUTDOWN_SECONDS > WAIT_MAX_SECONDS


async def test_sigterm_answers_a_long_poll_in_flight_and_takes_no_new_connection(
    api: tuple[subprocess.Popen[bytes], str], db: asyncpg.Pool
) -> None:
    proc, url = api
    oid = f"drain-{uuid.uuid4().hex[:10]}"
    async with db.acquire() as conn:
        await store.record_order(conn, oid, f"pay-{oid}", ADDRESS, [{"sku": "ABC", "qty": 1}])

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        poll = asyncio.create_task(
            http.get(
                f"/orders/{oid}/status",
                params={"wait": WAIT_MAX_SECONDS, "changed_from": "RECEIVED"},
            )
        )
        await asyncio.sleep(1.0)  # the long poll is held by the API
        assert not poll.done()
        proc.send_signal(signal.SIGTERM)
        sigterm = time.monotonic()
        await asyncio.sleep(0.5)
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(base_url=url, timeout=2) as fresh:
                await fresh.get("/healthz")

        await asyncio.sleep(CHANGE_AFTER_SIGTERM_SECONDS - (time.monotonic() - sigterm))
        async with db.acquire() as conn:
            await store.advance_order(conn, oid, OrderState.VALIDATED, "order_validated")
        resp = await poll
    if resp.status_code != 200:
        proc.kill()
        assert proc.stdout is not None
        pytest.fail(f"{resp.status_code} {resp.text}: {proc.stdout.read().decode()[-3000:]}")
    assert resp.json()["state"] == "VALIDATED"

    code = await asyncio.to_thread(proc.wait, GRACEFUL_SHUTDOWN_SECONDS)
    # uvicorn re-raises SIGTERM once drained, so the exit status says why.
    assert code in (0, -signal.SIGTERM)
    assert proc.stdout is not None
    assert b"Application shutdown complete" in proc.stdout.read()
