"""Access and secrets on the real stack: API_TOKEN is enforced on the order
endpoints (probes stay open), the CLI sends it, and neither the token nor the
database password appears anywhere in the stack's logs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import API_TOKEN, DB_PASSWORD
from tests.integration.test_api import TERMINAL, new_id, start, wait_state

pytestmark = pytest.mark.integration


async def test_order_endpoints_need_the_token(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=20) as anonymous:
        for method, path in [
            ("POST", "/orders/sec-1/start"),
            ("POST", "/orders/sec-1/signals/approve"),
            ("POST", "/orders/sec-1/signals/cancel"),
            ("POST", "/orders/sec-1/signals/update-address"),
            ("GET", "/orders/sec-1/status"),
            ("GET", "/orders/sec-1/events"),
        ]:
            for headers in ({}, {"Authorization": "Bearer not-the-token"}):
                resp = await anonymous.request(method, path, headers=headers)
                assert resp.status_code == 401, (method, path, resp.text)
                assert resp.json()["error"] == "unauthorized"
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/readyz")).status_code == 200
        assert (await anonymous.get("/dependencies")).status_code == 200


def test_cli_sends_the_token(api_url: str) -> None:
    cli = str(Path(sys.executable).parent / "orderflow")
    env = {**os.environ, "API_BASE_URL": api_url, "API_TOKEN": API_TOKEN}
    oid = new_id()
    started = subprocess.run(
        [cli, "start", oid], env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 0, started.stdout + started.stderr
    cancelled = subprocess.run(
        [cli, "cancel", oid], env=env, capture_output=True, text=True, timeout=60
    )
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    without = subprocess.run(
        [cli, "status", oid],
        env={**env, "API_TOKEN": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert without.returncode == 1 and "401" in without.stdout


async def test_no_secret_in_any_log_line(http: httpx.AsyncClient, stack_log: Path) -> None:
    # Some traffic first, including a rejected token and an order that goes all the way.
    oid = new_id()
    assert (await start(http, oid)).status_code == 202
    assert (await http.post(f"/orders/{oid}/signals/approve")).status_code == 202
    await wait_state(http, oid, TERMINAL)
    await http.get("/orders/x/status", headers={"Authorization": f"Bearer {API_TOKEN}-wrong"})
    text = await asyncio.to_thread(stack_log.read_text)
    assert "Orderflow is running" in text  # the banner, which prints the database URL
    assert "postgresql://postgres:***@" in text
    assert API_TOKEN not in text
    assert DB_PASSWORD not in text
