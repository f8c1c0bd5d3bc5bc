"""`make bench`: measure what users see at fixed points and write docs/benchmarks.md.

Every point runs the load tool (loadtest/locustfile.py) against a stack started as
`make run` starts it (its defaults, INFO logs included), on free ports and a fresh
data directory, everything on this one machine. The headline is the client's clock
(start request sent -> final state read); the workflow's own clock is reported
beside it. For each point it also counts CPU-seconds per completed order, for the
stack's processes together and for the load generator apart, and what the embedded
Temporal server did per order (from its metrics: counts that, unlike CPU, do not
depend on the host's speed). The points:

* fresh stack: one order at a time; 10 orders/s polling every 1 s, every 0.25 s,
  and with the long poll; 5 orders/s; past the knee (admission control at work);
* the same stack once it holds PRELOAD_ORDERS finished orders: 10 orders/s again;
* someone else's Temporal: a plain `temporal server start-dev`, no tuning flags;
* comparisons: the workflow sandbox on, and the ruled-out design (regular
  activities retried by the server).

Not a test: nothing here asserts a timing. `BENCH_QUICK=1` shortens every phase.
"""

from __future__ import annotations

import asyncio
import json
import os
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

from loadtest import bench_report, headless
from loadtest.prometheus_text import shed_counts, temporal_work
from orderflow.devstack import postgres
from orderflow.devstack.launcher import StackProcess, free_port
from orderflow.settings import REPO_ROOT

QUICK = os.environ.get("BENCH_QUICK") == "1"
SECONDS = 15 if QUICK else 60
SEQUENTIAL_ORDERS = 5 if QUICK else 20
# Past the knee: about twice what the stack completes on a 2-core machine (~10/s).
OVERLOAD_RATE = 20
OVERLOAD_SECONDS = 10 if QUICK else 30
PRELOAD_ORDERS = int(os.environ.get("BENCH_PRELOAD_ORDERS", "500" if QUICK else "10000"))
# Below the knee, so that little is shed; rounds repeat until enough orders are stored.
PRELOAD_RATE = 10
PRELOAD_ROUNDS = 3
LONG_POLL_SECONDS = 20
# The ruled-out design holds a worker slot per hung attempt for 300 s, so it is
# measured on a few sequential orders only (a rate would exhaust the 100 slots).
REGULAR_ORDERS = 3 if QUICK else 10
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


def rate_args(rate: float, seconds: float, *extra: str) -> list[str]:
    return ["--orders-per-second", f"{rate:g}", "--duration", f"{seconds:g}", *extra]


POLL_1 = ("--poll-interval", "1")
POLL_QUARTER = ("--poll-interval", "0.25")
LONG_POLL = ("--wait-seconds", str(LONG_POLL_SECONDS))


class Stack(StackProcess):
    """A stack as `make run` starts it, in ``out``: its data directory and stack.log."""

    def __init__(self, out: Path, env: dict[str, str | None] | None = None) -> None:
        out.mkdir(parents=True, exist_ok=True)
        super().__init__(out / "data", out / "stack.log", env=env)
        self.out = out
        self.external: dict[int, str] = {}  # services it uses but did not start

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
    """TEMPORAL_WORK so far on the stack's embedded Temporal; None for someone else's."""
    if "TEMPORAL_ADDRESS" in stack.env:
        return None
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
    reference_before = bench_report.reference_workload_ms()
    pids = stack.processes()
    before = cpu_seconds(pids)
    shed_before = shed_by_reason(stack)
    work_before = temporal_totals(stack)
    summary, generator = run_load(stack, stack.out.parent / name, args)
    work_after = temporal_totals(stack)
    shed_after = shed_by_reason(stack)
    pids |= stack.processes()
    after = cpu_seconds(pids)
    reference_after = bench_report.reference_workload_ms()
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


def fresh_points(out: Path) -> list[dict[str, Any]]:
    stack = Stack(out / "fresh-stack")
    say(f"fresh stack, `make run` defaults (logs: {stack.log_path})")
    stack.start()
    try:
        return [
            point(
                stack,
                "one-at-a-time",
                f"1 order at a time (×{SEQUENTIAL_ORDERS}), long poll",
                ["--scenario", "sequential", "--orders", str(SEQUENTIAL_ORDERS), *LONG_POLL],
            ),
            point(
                stack,
                "fresh-10-poll1",
                "10 orders/s, polling every 1 s",
                rate_args(10, SECONDS, *POLL_1),
            ),
            point(
                stack,
                "fresh-10-poll025",
                "10 orders/s, polling every 0.25 s",
                rate_args(10, SECONDS, *POLL_QUARTER),
            ),
            point(
                stack,
                "fresh-10-wait",
                f"10 orders/s, long poll (wait={LONG_POLL_SECONDS})",
                rate_args(10, SECONDS, *LONG_POLL),
            ),
            point(
                stack,
                "fresh-5-poll1",
                "5 orders/s, polling every 1 s",
                rate_args(5, SECONDS, *POLL_1),
            ),
            point(
                stack,
                "overload",
                f"{OVERLOAD_RATE} orders/s for {OVERLOAD_SECONDS} s (past the knee), polling every 1 s",
                rate_args(OVERLOAD_RATE, OVERLOAD_SECONDS, *POLL_1),
            ),
        ]
    finally:
        stack.stop()


# Past the knee (~17 orders/s with the generator on 2 cores): 1.5x and 2x.
PAST_KNEE_RATES = (25, 34)


def admission_points(out: Path, env: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    """Admission on `make run` defaults (or ``env``): nothing shed below the knee, and
    past it goodput kept with every admitted order inside the promise."""
    tag = "external-" if env else ""
    stack = Stack(out / f"{tag}admission-stack", env=env)
    stack.start(within=180)
    try:
        points = [
            point(
                stack,
                f"{tag}adm-5-poll1",
                "5 orders/s, polling every 1 s",
                rate_args(5, SECONDS, *POLL_1),
            ),
            point(
                stack,
                f"{tag}adm-10-poll1",
                "10 orders/s, polling every 1 s",
                rate_args(10, SECONDS, *POLL_1),
            ),
            point(
                stack,
                f"{tag}adm-10-poll025",
                "10 orders/s, polling every 0.25 s",
                rate_args(10, SECONDS, *POLL_QUARTER),
            ),
        ]
        for rate in PAST_KNEE_RATES:
            points.append(
                point(
                    stack,
                    f"{tag}adm-{rate}-poll1",
                    f"{rate} orders/s (past the knee), polling every 1 s",
                    rate_args(rate, SECONDS, *POLL_1),
                )
            )
        return points
    finally:
        stack.stop()


def preloaded_points(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    stack = Stack(out / "preloaded-stack")
    stack.start()
    try:
        offered = 0
        stored = stored_orders(stack)
        for round_ in range(PRELOAD_ROUNDS):
            missing = PRELOAD_ORDERS - stored["finished"]
            if missing <= 0:
                break
            say(f"preloading {missing} orders at {PRELOAD_RATE}/s (long poll), round {round_ + 1}")
            summary, _ = run_load(
                stack,
                out / f"preload-{round_ + 1}",
                rate_args(
                    PRELOAD_RATE, missing / PRELOAD_RATE, *LONG_POLL, "--drain-seconds", "120"
                ),
            )
            offered += summary["orders"]
            drain(stack)
            stored = stored_orders(stack)
        sqlite = stack.out / "data" / "temporal.sqlite"
        preload = {
            "offered": offered,
            "stored": stored,
            "temporal_sqlite_mib": round(sqlite.stat().st_size / 2**20)
            if sqlite.exists()
            else None,
        }
        say(f"preloaded: {preload}")
        return [
            point(
                stack,
                "preloaded-10-poll1",
                f"10 orders/s, polling every 1 s, {stored['finished']} finished orders stored",
                rate_args(10, SECONDS, *POLL_1),
            ),
            point(
                stack,
                "preloaded-10-poll025",
                f"10 orders/s, polling every 0.25 s, {stored['finished']} finished orders stored",
                rate_args(10, SECONDS, *POLL_QUARTER),
            ),
        ], preload
    finally:
        stack.stop()


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


def _plain_dev_server(out: Path, port: int) -> subprocess.Popen[bytes]:
    """`temporal server start-dev` with no flags but its ports, as a user may run it."""
    workdir = out / f"external-temporal-{port}"
    workdir.mkdir(parents=True)
    binary = str(Path(sys.executable).parent / "temporal")
    cmd = [binary, "server", "start-dev", "--port", str(port), "--ui-port", str(free_port())]
    say(f"plain Temporal dev server: {' '.join(cmd[1:])}")
    with open(workdir / "temporal.log", "wb") as log:
        return subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)


def external_points(out: Path) -> list[dict[str, Any]]:
    """The stack against a plain `temporal server start-dev`, as a user may already run."""
    port = free_port()
    server = _plain_dev_server(out, port)
    stack = Stack(out / "external-stack", env={"TEMPORAL_ADDRESS": f"127.0.0.1:{port}"})
    stack.external[server.pid] = "temporal"  # counted with the stack
    try:
        stack.start(within=180)
        return [
            point(
                stack,
                "external-10-poll1",
                "plain dev server: 10 orders/s, polling every 1 s",
                rate_args(10, SECONDS, *POLL_1),
            ),
            point(
                stack,
                "external-10-poll025",
                "plain dev server: 10 orders/s, polling every 0.25 s",
                rate_args(10, SECONDS, *POLL_QUARTER),
            ),
        ]
    finally:
        stack.stop()
        server.terminate()
        server.wait(30)


def comparison_points(out: Path) -> list[dict[str, Any]]:
    points = []
    for name, env, label, args in (
        (
            "compare-sandboxed",
            {"WORKER_WORKFLOW_SANDBOX": "true"},
            "workflow sandbox on (WORKER_WORKFLOW_SANDBOX=true): 10 orders/s, polling every 1 s",
            rate_args(10, SECONDS, *POLL_1),
        ),
        (
            "compare-regular",
            {"STEP_MODE": "regular"},
            f"ruled out: regular activities, server-side retries (×{REGULAR_ORDERS} sequential)",
            [
                "--scenario",
                "sequential",
                "--orders",
                str(REGULAR_ORDERS),
                *LONG_POLL,
                "--drain-seconds",
                "120",
            ],
        ),
    ):
        stack = Stack(out / f"{name}-stack", env=dict(env))
        stack.start()
        try:
            points.append(point(stack, name, label, args))
        finally:
            stack.stop()
    return points


def cold_start() -> list[float]:
    """Import of the Lambda handler to its first response (Mangum, /healthz)."""
    code = (
        "import time; t=time.perf_counter();"
        "from functions.lambda_handler import handler;"
        "from tests.integration.test_lambda import http_api_event;"
        "r=handler(http_api_event('GET','/healthz'), None);"
        "assert r['statusCode']==200; print(time.perf_counter()-t)"
    )
    runs = []
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
        )
        runs.append(float(done.stdout.strip().splitlines()[-1]))
    return runs


def main() -> None:
    out = REPO_ROOT / "reports" / f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    out.mkdir(parents=True)
    if os.environ.get("BENCH_ONLY") == "admission":
        # The admission points alone (make bench-admission), on `make run` defaults and
        # against a plain dev server; results.json only, docs/benchmarks.md untouched.
        port = free_port()
        points = admission_points(out)
        server = _plain_dev_server(out, port)
        try:
            points += admission_points(out, {"TEMPORAL_ADDRESS": f"127.0.0.1:{port}"})
        finally:
            server.terminate()
            server.wait(30)
        (out / "results.json").write_text(json.dumps({"points": points}, indent=1, default=str))
        say(f"wrote {out / 'results.json'}")
        return
    results: dict[str, Any] = {"when": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "quick": QUICK}
    results["machine"] = bench_report.machine()
    results["points"] = fresh_points(out)
    preloaded, results["preload"] = preloaded_points(out)
    results["points"] += preloaded
    results["points"] += external_points(out)
    results["points"] += comparison_points(out)
    say("cold start of the Lambda handler")
    results["cold_start"] = cold_start()
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    doc = bench_report.write(results, out)
    say(f"wrote {doc} (raw results: {out / 'results.json'})")


if __name__ == "__main__":
    main()
