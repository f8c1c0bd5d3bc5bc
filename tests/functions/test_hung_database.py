"""Status waits with PostgreSQL hung (SIGSTOP, not down: connections open, nothing
answers): every wait answers within seconds, none holds its request or the pool.
Real PostgreSQL of its own, real Temporal."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from functions import deps
from functions.main import app
from orderflow.settings import Settings
from tests.conftest import LocalPostgres
from tests.orderflow.test_store import make_order, new_id


@pytest.fixture
def hangable_pg(tmp_path: Path) -> Iterator[LocalPostgres]:
    server = LocalPostgres(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _freeze(server: LocalPostgres, sig: signal.Signals) -> None:
    """Signal the postmaster and every backend: SIGSTOP on the postmaster alone would
    leave open connections answering."""
    assert server._proc is not None
    root = psutil.Process(server._proc.pid)
    for proc in [root, *root.children(recursive=True)]:
        os.kill(proc.pid, sig)


async def test_with_postgresql_hung_ten_waits_each_answer_within_3_s(
    hangable_pg: LocalPostgres, temporal_address: str
) -> None:
    settings = Settings(
        database_url=hangable_pg.dsn, temporal_address=temporal_address, shed_queue_seconds=0
    )
    resources = deps.Resources(settings)
    app.dependency_overrides[deps.current_resources] = lambda: resources
    app.dependency_overrides[deps.current_settings] = lambda: settings
    transport = httpx.ASGITransport(app=app)
    oid = new_id()
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            await make_order(await resources.db(), oid)
            warm = await http.get(f"/orders/{oid}/status", params={"wait": 0.5})
            assert warm.status_code == 200, warm.text
            _freeze(hangable_pg, signal.SIGSTOP)
            try:
                sent = time.monotonic()

                async def one() -> tuple[int, float]:
                    answer = await http.get(f"/orders/{oid}/status", params={"wait": 1})
                    return answer.status_code, time.monotonic() - sent

                answers = await asyncio.gather(*(one() for _ in range(10)))
            finally:
                _freeze(hangable_pg, signal.SIGCONT)
        # Before: each re-read waited on the pool without a timeout, and the listener's
        # reconnects queued the waits behind each other (≈ 2 s each).
        assert all(took < 3 for _, took in answers), answers
        # Neither PostgreSQL nor Temporal (no workflow) can say: 503, not a guess.
        assert {code for code, _ in answers} == {503}, answers
    finally:
        app.dependency_overrides.clear()
        await resources.close()
