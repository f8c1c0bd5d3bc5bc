"""A whole `make run` stack on free ports, for injecting faults into it.

Embedded PostgreSQL (durable, as `make run` runs it) and Temporal (persisted to
its SQLite file), both workers and the API, under the devstack supervisor.
Components are found by the pids the supervisor logs; a hold file
(``DATA_DIR/hold/<name>``) keeps a killed component down until released.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from orderflow.devstack.launcher import StackProcess

API_TOKEN = "fault-token-3c9a1f"
TERMINAL = {"COMPLETED", "CANCELLED", "FAILED"}
ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
# Steps that happen exactly once in a completed order, whatever was retried.
ONCE = ("order_received", "order_validated", "payment_charged", "order_shipped")


class FaultStack(StackProcess):
    def __init__(self, root: Path) -> None:
        super().__init__(
            root / "data",
            root / "stack.log",
            env={
                # The drills count on the real flaky steps; a FLAKY=off must not leak in.
                "FLAKY": None,
                "LOG_FORMAT": "json",
                "API_TOKEN": API_TOKEN,
                # Approvals may wait out an outage; the review window must not close first.
                "REVIEW_TIMEOUT_SECONDS": "600",
                "UPDATE_TIMEOUT_SECONDS": "5",
            },
        )

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports.postgres}/orderflow"

    # --- components ------------------------------------------------------------------

    def pid(self, name: str) -> int:
        return self.pids(name)[-1]

    def kill(self, name: str, sig: signal.Signals) -> int:
        pid = self.pid(name)
        os.kill(pid, sig)
        return pid

    def hold(self, name: str) -> None:
        (self.data_dir / "hold").mkdir(exist_ok=True)
        (self.data_dir / "hold" / name).touch()

    def release(self, name: str) -> None:
        (self.data_dir / "hold" / name).unlink(missing_ok=True)

    def release_all(self) -> None:
        for held in (self.data_dir / "hold").glob("*"):
            held.unlink()

    def restarts(self, name: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events()
            if e.get("event") == "component exited; restarting" and e.get("name") == name
        ]


# --- clients ---------------------------------------------------------------------------


def api(stack: FaultStack) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.url, timeout=15, headers={"Authorization": f"Bearer {API_TOKEN}"}
    )


class Client:
    """What a well-behaved client does in an outage: retry 503 and lost connections.

    Any other answer than the expected ones (a 500 above all) fails the test.
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.seen: dict[int | str, int] = {}

    def _count(self, key: int | str) -> None:
        self.seen[key] = self.seen.get(key, 0) + 1

    async def retrying(
        self, call: Callable[[], Awaitable[httpx.Response]], ok: set[int], within: float = 120
    ) -> httpx.Response:
        deadline = time.monotonic() + within
        while True:
            try:
                resp = await call()
                self._count(resp.status_code)
                if resp.status_code in ok:
                    return resp
                assert resp.status_code == 503, f"{resp.status_code}: {resp.text}"
                assert resp.json()["error"] == "service_unavailable"
            except httpx.TransportError as err:
                self._count(type(err).__name__)
            assert time.monotonic() < deadline, f"still failing after {within}s: {self.seen}"
            await asyncio.sleep(0.3)

    async def place(self, order_id: str) -> None:
        """Start and approve; a retried start that had got through is a 409."""
        body = {"payment_id": f"pay-{order_id}", "address": ADDRESS}
        await self.retrying(
            lambda: self.http.post(f"/orders/{order_id}/start", json=body), {202, 409}
        )
        await self.retrying(lambda: self.http.post(f"/orders/{order_id}/signals/approve"), {202})

    def load(self, prefix: str, count: int, spacing: float) -> tuple[list[str], asyncio.Task[None]]:
        """Place ``count`` orders, one every ``spacing`` seconds, in the background."""
        ids = [f"{prefix}-{i}-{int(time.time() * 1000) % 10**8}" for i in range(count)]

        async def run() -> None:
            placing = []
            for oid in ids:
                placing.append(asyncio.create_task(self.place(oid)))
                await asyncio.sleep(spacing)
            await asyncio.gather(*placing)

        return ids, asyncio.create_task(run())

    async def wait_live(self, order_id: str, state: str, within: float) -> None:
        """Until the order's live status (the workflow's query) shows ``state``."""
        deadline = time.monotonic() + within
        while True:
            if await self.live_state(order_id) == state:
                return
            assert time.monotonic() < deadline, f"{order_id} never showed {state}"
            await asyncio.sleep(0.2)

    async def live_state(self, order_id: str) -> str | None:
        try:
            resp = await self.http.get(f"/orders/{order_id}/status", params={"live": "true"})
        except httpx.TransportError:
            return None
        return str(resp.json()["state"]) if resp.status_code == 200 else None


# --- the database, read directly -------------------------------------------------------


async def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def stored_states(dsn: str, ids: Iterable[str]) -> dict[str, str]:
    try:
        rows = await query(dsn, "SELECT id, state FROM orders WHERE id = ANY($1)", list(ids))
    except (OSError, asyncpg.PostgresError):
        return {}
    return {r["id"]: r["state"] for r in rows}


async def wait_finished(dsn: str, ids: list[str], within: float) -> dict[str, str]:
    deadline = time.monotonic() + within
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = await stored_states(dsn, ids)
        if len(states) == len(ids) and set(states.values()) <= TERMINAL:
            return states
        await asyncio.sleep(0.5)
    pending = {oid: states.get(oid, "not stored") for oid in ids if states.get(oid) not in TERMINAL}
    raise AssertionError(f"orders not finished within {within}s: {pending}")


async def assert_completed_exactly_once(dsn: str, ids: list[str]) -> None:
    """Every order COMPLETED, charged once and never refunded, each step's event once."""
    states = await stored_states(dsn, ids)
    assert states == dict.fromkeys(ids, "COMPLETED"), states
    payments = await query(
        dsn,
        "SELECT order_id, count(*) AS n, min(status) AS status FROM payments"
        " WHERE order_id = ANY($1) GROUP BY order_id",
        ids,
    )
    assert {p["order_id"]: (p["n"], p["status"]) for p in payments} == dict.fromkeys(
        ids, (1, "charged")
    )
    events = await query(
        dsn,
        "SELECT order_id, type, count(*) AS n FROM events WHERE order_id = ANY($1)"
        " GROUP BY order_id, type",
        ids,
    )
    counts: dict[str, dict[str, int]] = {oid: {} for oid in ids}
    for e in events:
        counts[e["order_id"]][e["type"]] = e["n"]
    for oid, by_type in counts.items():
        for step in ONCE:
            assert by_type.get(step) == 1, (oid, by_type)
        assert "payment_refunded" not in by_type, (oid, by_type)
        # One preparation and one dispatch per shipping run, never more.
        assert by_type.get("carrier_dispatched", 0) <= by_type["package_prepared"], (oid, by_type)
