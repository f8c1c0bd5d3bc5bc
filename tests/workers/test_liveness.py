"""Liveness that means it (workers/liveness.py): a worker whose polls stop coming back
reports not-live within a bound; an idle worker, and one waiting out a short Temporal
blip, stays live. Real SDK worker, real Temporal dev server of this module's own
(stopped and started again on the same port), with a 2 s long poll so that "idle"
takes seconds here instead of the minute it takes on a default server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from orderflow.devstack.launcher import free_port
from orderflow.settings import Settings
from tests.conftest import TEMPORAL_BIN
from workers.health import WorkerHealth
from workers.liveness import PollWatch
from workers.shipping.workflow import ShippingWorkflow
from workers.telemetry import WorkerMetrics

LONG_POLL_SECONDS = 2
STALE_AFTER = 10.0  # blip + the SDK's reconnect backoff + a long poll fit well inside
SAMPLE = 0.5


class DevServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(TEMPORAL_BIN),
                "server",
                "start-dev",
                "--headless",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--ui-port",
                str(free_port()),
                "--log-level",
                "error",
                "--dynamic-config-value",
                f'matching.longPollExpirationInterval="{LONG_POLL_SECONDS}s"',
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    dev = DevServer()
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()


async def connect(address: str, metrics: WorkerMetrics) -> Client:
    for _ in range(100):
        try:
            return await Client.connect(address, runtime=metrics.runtime)
        except RuntimeError:
            await asyncio.sleep(0.2)
    raise AssertionError(f"Temporal at {address} never answered")


class Observed:
    """not_live() sampled every 0.1 s, with the time of each answer."""

    def __init__(self, watch: PollWatch) -> None:
        self.watch = watch
        self.answers: list[tuple[float, str | None]] = []

    async def during(self, seconds: float) -> list[str | None]:
        began = len(self.answers)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.answers.append((time.monotonic(), self.watch.not_live()))
            await asyncio.sleep(0.1)
        return [reason for _, reason in self.answers[began:]]

    async def until_not_live(self, within: float) -> float:
        began = time.monotonic()
        while self.watch.not_live() is None:
            assert time.monotonic() - began < within, "still live"
            await asyncio.sleep(0.1)
        return time.monotonic() - began


@pytest.fixture
async def watched(server: DevServer) -> AsyncIterator[Observed]:
    metrics = WorkerMetrics(Settings())
    client = await connect(f"127.0.0.1:{server.port}", metrics)
    watch = PollWatch(metrics.sdk_text, STALE_AFTER, interval=SAMPLE)
    worker = Worker(client, task_queue=f"live-{uuid.uuid4()}", workflows=[ShippingWorkflow])
    sampling = asyncio.create_task(watch.run())
    async with worker:
        watch.start()
        yield Observed(watch)
        watch.stop()
    sampling.cancel()
    await metrics.close()


async def test_idle_and_blip_stay_live_an_outage_does_not(
    server: DevServer, watched: Observed
) -> None:
    # Idle: no task at all, for longer than the bound. Its empty polls come back.
    assert set(await watched.during(STALE_AFTER + 3)) == {None}

    # A blip: Temporal away for 2 s, then back (the SDK retries its polls meanwhile).
    server.stop()
    await asyncio.sleep(2)
    server.start()
    assert set(await watched.during(STALE_AFTER + 3)) == {None}

    # An outage past the bound: not live, within the bound plus a sample.
    server.stop()
    down_at = time.monotonic()
    after = await watched.until_not_live(within=STALE_AFTER + 5)
    silent = time.monotonic() - down_at
    assert STALE_AFTER - LONG_POLL_SECONDS <= silent <= STALE_AFTER + 2 * SAMPLE + 1, silent
    reason = watched.watch.not_live()
    assert reason is not None and "no poll came back" in reason
    print(f"not live {after:.1f} s after Temporal went away")

    # Temporal back: the worker polls again and is live again, no restart needed.
    server.start()
    began = time.monotonic()
    while watched.watch.not_live() is not None:
        assert time.monotonic() - began < 20, "never live again"
        await asyncio.sleep(0.2)


async def test_healthz_says_why_a_worker_is_not_live(temporal_client: Client) -> None:
    reasons: list[str | None] = [None]
    endpoint = WorkerHealth(temporal_client, None, metrics=None, not_live=lambda: reasons[0])  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=endpoint.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as http:
        live = await http.get("/healthz")
        reasons[0] = "no poll came back from Temporal for 151 s"
        dead = await http.get("/healthz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert dead.status_code == 503
    assert dead.json() == {"status": "not_live", "reason": reasons[0]}


async def test_a_stuck_event_loop_fails_the_probe(temporal_client: Client) -> None:
    """/healthz runs on the worker's event loop: stuck, it cannot answer within the
    kubelet's timeoutSeconds (3 s in the chart), and the pod is restarted."""
    endpoint = WorkerHealth(temporal_client, None, metrics=None)  # type: ignore[arg-type]
    port = free_port()
    server = endpoint.server("127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}/healthz"
    for _ in range(100):
        if server.started:
            break
        await asyncio.sleep(0.05)
    answers: list[object] = []

    def probe() -> None:  # the kubelet, from outside the loop
        try:
            answers.append(httpx.get(url, timeout=3).status_code)
        except httpx.TimeoutException as err:
            answers.append(err)

    assert await asyncio.to_thread(httpx.get, url, timeout=3) is not None
    kubelet = threading.Thread(target=probe)
    kubelet.start()
    time.sleep(4.5)  # noqa: ASYNC251 -- the point: the loop is stuck
    await asyncio.to_thread(kubelet.join)
    server.should_exit = True
    await serving
    assert len(answers) == 1 and isinstance(answers[0], httpx.TimeoutException), answers


def test_a_worker_whose_sdk_worker_fails_exits(postgres_dsn: str, temporal_address: str) -> None:
    """A fatal worker error (here: a namespace Temporal does not have) ends the process
    with a failure, so Kubernetes restarts it; it does not linger as a live process
    that polls nothing."""
    env = {
        **os.environ,
        "DATABASE_URL": postgres_dsn,
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_NAMESPACE": f"missing-{uuid.uuid4().hex[:8]}",
        "SHIPPING_WORKER_HTTP_PORT": str(free_port()),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "workers.shipping"], env=env, capture_output=True, timeout=60
    )
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode not in (0, -signal.SIGKILL), out[-2000:]
    assert "worker started" in out, out[-2000:]  # it got as far as polling, then failed
    assert "Namespace" in out and "not found" in out, out[-2000:]
