"""How `make bench` measures one point: a stack as `make run` starts it, the load tool
against it, and what every process of the stack (and the load tool) spent per completed
order. The points themselves are loadtest/bench.py's.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from temporalio.client import Client

from loadtest import headless, host
from loadtest.prometheus_text import shed_counts, temporal_work
from orderflow.devstack import postgres
from orderflow.devstack.launcher import StackProcess, free_port

DRAIN_LIMIT_SECONDS = 240
COMPONENTS = ("postgres", "temporal", "order-worker", "shipping-worker", "api", "supervisor")

MARKERS = (
    ("postgres", "postgres"),
    ("temporal", "start-dev"),
    ("order-worker", "workers.order"),
    ("shipping-worker", "workers.shipping"),
    ("api", "-m functions"),
)


def say(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)  # noqa: T201


class Stack(StackProcess):
    """A stack as `make run` starts it, in ``out``: its data directory and stack.log."""

    def __init__(self, out: Path, env: dict[str, str | None] | None = None) -> None:
        out.mkdir(parents=True, exist_ok=True)
        super().__init__(out / "data", out / "stack.log", env=env)
        self.out = out
        self.external: dict[int, str] = {}  # services it uses but did not start
        # Someone else's Temporal's metrics endpoint, where it has one.
        self.temporal_metrics: str | None = None

    def processes(self) -> dict[int, str]:
        """pid -> component, for every process of the stack (a PostgreSQL backend each)."""
        assert self.proc is not None
        found = {self.proc.pid: "supervisor", **self.external}
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                cmd = " ".join(child.cmdline())
            except psutil.Error:
                continue
            for name, marker in MARKERS:
                if marker in cmd:
                    found[child.pid] = name
                    break
        return found


def cpu_seconds(pids: dict[int, str]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        out[pid] = t.user + t.system
    return out


def run_load(stack: Stack, out: Path, args: list[str]) -> tuple[dict[str, Any], float]:
    """Run the load tool; its summary and the CPU-seconds it used itself."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = headless.command(stack.url, out, "--html", str(out / "locust.html"), *args)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out / "locust.log", "wb") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary, used


def shed_by_reason(stack: Stack) -> dict[str, float]:
    """The API's count of refused starts so far, by the signal that refused them."""
    return shed_counts(httpx.get(f"{stack.url}/metrics", timeout=10).text)


def temporal_totals(stack: Stack) -> dict[str, float] | None:
    """TEMPORAL_WORK so far on the stack's Temporal; None where its metrics are unknown."""
    if "TEMPORAL_ADDRESS" in stack.env:
        url = stack.temporal_metrics
        if url is None:
            return None
    else:
        url = f"http://127.0.0.1:{stack.ports.temporal_metrics}/metrics"
    return temporal_work(httpx.get(url, timeout=10).text)


def temporal_address(stack: Stack) -> str:
    return stack.env.get("TEMPORAL_ADDRESS") or f"127.0.0.1:{stack.ports.temporal}"


def running_workflows(stack: Stack) -> int:
    async def count() -> int:
        client = await Client.connect(temporal_address(stack))
        return (await client.count_workflows("ExecutionStatus='Running'")).count

    return asyncio.run(count())


def drain(stack: Stack) -> float:
    """Wait until no workflow runs, so each point starts from an idle system."""
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_LIMIT_SECONDS and running_workflows(stack):
        time.sleep(2)
    return round(time.monotonic() - started, 1)


def point(stack: Stack, name: str, label: str, args: list[str]) -> dict[str, Any]:
    """One measured point: the load tool's summary plus CPU-seconds per completed order."""
    waited = drain(stack)
    say(f"{name}: {label} (waited {waited} s for the previous load to drain)")
    # The host's own speed around the point: it varies (98-215 ms for the same
    # workload within one minute, 2026-12-03), and CPU per order varies with it.
    reference_before = host.reference_workload_ms()
    pids = stack.processes()
    before = cpu_seconds(pids)
    shed_before = shed_by_reason(stack)
    work_before = temporal_totals(stack)
    summary, generator = run_load(stack, stack.out.parent / name, args)
    work_after = temporal_totals(stack)
    shed_after = shed_by_reason(stack)
    pids |= stack.processes()
    after = cpu_seconds(pids)
    reference_after = host.reference_workload_ms()
    by_component = dict.fromkeys(COMPONENTS, 0.0)
    for pid, total in after.items():
        by_component[pids[pid]] += total - before.get(pid, 0.0)
    completed = max(1, summary["by_state"].get("COMPLETED", 0))
    summary.update(
        name=name,
        label=label,
        cpu_seconds={k: round(v, 2) for k, v in by_component.items()},
        cpu_per_order_stack=round(sum(by_component.values()) / completed, 4),
        cpu_per_order_generator=round(generator / completed, 4),
        cpu_per_order=({k: round(v / completed, 4) for k, v in by_component.items()}),
        reference_ms=[reference_before, reference_after],
        shed_by={r: int(n - shed_before.get(r, 0)) for r, n in shed_after.items()},
        temporal_per_order=(
            {k: round((work_after[k] - work_before[k]) / completed, 2) for k in work_after}
            if work_before is not None and work_after is not None
            else None
        ),
    )
    lat = summary["latency"]
    say(
        f"{name}: {summary['orders']} orders {summary['by_state']} client p50 {lat['p50']} "
        f"p99 {lat['p99']}; CPU/order stack {summary['cpu_per_order_stack']} s, "
        f"generator {summary['cpu_per_order_generator']} s"
    )
    return summary


def stored_orders(stack: Stack) -> dict[str, int]:
    async def query() -> dict[str, int]:
        conn = await asyncpg.connect(postgres.dsn(stack.ports.postgres))
        try:
            total = await conn.fetchval("SELECT count(*) FROM orders")
            finished = await conn.fetchval(
                "SELECT count(*) FROM orders WHERE state IN ('COMPLETED', 'CANCELLED', 'FAILED')"
            )
            payments = await conn.fetchval("SELECT count(*) FROM payments")
        finally:
            await conn.close()
        return {"orders": total, "finished": finished, "payments": payments}

    return asyncio.run(query())


class PlainDevServer:
    """`temporal server start-dev` with no flags but its ports, as a user may run it
    (in memory, four task-queue partitions); its metrics are read like the embedded one's."""

    def __init__(self, out: Path) -> None:
        self.port, metrics_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        workdir = out / f"external-temporal-{self.port}"
        workdir.mkdir(parents=True)
        ports = ["--port", str(self.port), "--ui-port", str(free_port())]
        ports += ["--metrics-port", str(metrics_port)]
        cmd = [str(Path(sys.executable).parent / "temporal"), "server", "start-dev", *ports]
        say(f"plain Temporal dev server: {' '.join(cmd[1:])}")
        with open(workdir / "temporal.log", "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)

    def stack(self, out: Path) -> Stack:
        """A stack as `make run` starts it, but on this Temporal (counted with it)."""
        stack = Stack(out, env={"TEMPORAL_ADDRESS": self.address})
        stack.external[self.proc.pid] = "temporal"
        stack.temporal_metrics = self.metrics
        return stack

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # a slow stop must not lose the run's results
            self.proc.wait(10)
