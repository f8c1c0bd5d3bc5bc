"""`make cold-start`: what waking from zero costs, measured with real processes.

Kubernetes is not needed for the part of a scale-from-zero that is ours: the process.
Each run, on this machine, against a real Temporal dev server and PostgreSQL (a private
`make run` stack on free ports, or DATABASE_URL + TEMPORAL_ADDRESS of one you started):

1. **API from zero**: spawn the API with the chart's command (`python -m functions`),
   then poll `GET /readyz` every 10 ms and send the first `POST /orders/{id}/start`
   the moment it answers. Reported: spawn -> first 200 on /readyz, and spawn -> the
   first start answered 202 (the API opens its Temporal and PostgreSQL connections on
   first use, so that first request carries them).
2. **Workers from zero**: the order from step 1 is approved and left IDLE seconds with
   no worker polling its task queue (the state it shows then is reported), then the
   order and shipping workers are spawned (`python -m workers.order`,
   `python -m workers.shipping`). Reported: worker spawn -> its /readyz 200, and worker
   spawn -> the order COMPLETED (read with `status?wait`, which answers at the commit).

Every run uses task queues of its own, so the stack's own workers never see these
orders. Times are the client's clock (this process, `time.monotonic`). In a cluster add
what only a cluster has: KEDA's polling interval (workers) or the interceptor noticing
the request (API), scheduling, the image pull if the node lacks it, and the probes'
periods. FLAKY defaults to off here, so that the order's own steps (which with
flaky_call on take a few seconds of retries, see docs/benchmarks.md) do not drown
the start-up costs; FLAKY=on measures them together.

Prints a summary, writes the raw numbers to COLD_START_OUT (reports/cold-start/)
and, unless COLD_START_DOC=0, the section "Scale to zero" of docs/benchmarks.md and
docs/cold-start.json (which `make bench` keeps in the page). Not a test: nothing here
asserts a timing; tests/workers/test_scale_from_zero.py asserts the behaviour.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from loadtest import cold_start_report
from orderflow.devstack import postgres
from orderflow.devstack.launcher import NOT_INHERITED, StackProcess, free_port
from orderflow.settings import REPO_ROOT

RUNS = int(os.environ.get("RUNS", "5"))
IDLE = float(os.environ.get("IDLE", "10"))
FLAKY = os.environ.get("FLAKY", "off")
OUT = Path(os.environ.get("COLD_START_OUT", REPO_ROOT / "reports" / "cold-start"))
WRITE_DOC = os.environ.get("COLD_START_DOC", "1") != "0"
POLL_SECONDS = 0.01
ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201


def wait_for(check: Callable[[], bool], proc: subprocess.Popen[bytes], within: float) -> float:
    """Poll ``check`` every 10 ms; the monotonic time it first held. Fails if proc exits."""
    deadline = time.monotonic() + within
    while True:
        try:
            if check():
                return time.monotonic()
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args!r}: not ready within {within} s")
        time.sleep(POLL_SECONDS)


@contextmanager
def spawned(module: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def ok(response: httpx.Response, *codes: int) -> bool:
    return response.status_code in (codes or (200,))


def one_run(run: int, base_env: dict[str, str]) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    api_port, order_port, shipping_port = free_port(), free_port(), free_port()
    env = {
        **base_env,
        "ORDER_TASK_QUEUE": f"cold-orders-{tag}",
        "SHIPPING_TASK_QUEUE": f"cold-shipping-{tag}",
        "API_PORT": str(api_port),
        "ORDER_WORKER_HTTP_PORT": str(order_port),
        "SHIPPING_WORKER_HTTP_PORT": str(shipping_port),
    }
    api = f"http://127.0.0.1:{api_port}"
    order_id = f"cold-{tag}"
    body = {"payment_id": f"pay-{tag}", "address": ADDRESS}
    result: dict[str, Any] = {"run": run, "order_id": order_id}
    with httpx.Client(timeout=30) as http:
        t0 = time.monotonic()
        with spawned("functions", env, OUT / f"api-{run}.log") as proc:
            ready = wait_for(lambda: ok(http.get(f"{api}/readyz")), proc, 60)
            # One start, not one per retry: a start is not safe to repeat (the next
            # would be a 409 if the first reached Temporal), and an answer other than
            # 202 (shed, Temporal unavailable) must fail the run, not hide in its time.
            answer = http.post(f"{api}/orders/{order_id}/start", json=body)
            if answer.status_code != 202:
                raise SystemExit(f"start answered {answer.status_code}: {answer.text}")
            started = time.monotonic()
            result["api_spawn_to_ready_s"] = ready - t0
            result["api_spawn_to_first_order_s"] = started - t0
            result["api_first_order_request_s"] = started - ready
            http.post(f"{api}/orders/{order_id}/signals/approve").raise_for_status()
            time.sleep(IDLE)
            waiting = http.get(f"{api}/orders/{order_id}/status").json()
            result["idle_s"] = IDLE
            result["state_while_no_worker"] = f"{waiting['state']} ({waiting['source']})"
            w0 = time.monotonic()
            with (
                spawned("workers.order", env, OUT / f"order-worker-{run}.log") as worker,
                spawned("workers.shipping", env, OUT / f"shipping-worker-{run}.log"),
            ):
                worker_url = f"http://127.0.0.1:{order_port}/readyz"
                result["worker_spawn_to_ready_s"] = (
                    wait_for(lambda: ok(http.get(worker_url)), worker, 60) - w0
                )
                state = ""
                deadline = time.monotonic() + 120
                while state not in {"COMPLETED", "CANCELLED", "FAILED"}:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{order_id} still {state} after 120 s")
                    status = http.get(f"{api}/orders/{order_id}/status", params={"wait": 20})
                    state = status.json()["state"]
                result["worker_spawn_to_completed_s"] = time.monotonic() - w0
                result["final_state"] = state
    return result


SUMMARY_KEYS = (
    "api_spawn_to_ready_s",
    "api_spawn_to_first_order_s",
    "api_first_order_request_s",
    "worker_spawn_to_ready_s",
    "worker_spawn_to_completed_s",
)


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        key: {
            "median": statistics.median(r[key] for r in runs),
            "min": min(r[key] for r in runs),
            "max": max(r[key] for r in runs),
        }
        for key in SUMMARY_KEYS
    }


@contextmanager
def services(out: Path) -> Iterator[dict[str, str]]:
    """DATABASE_URL and TEMPORAL_ADDRESS: the caller's if both are set, else a private stack."""
    if os.environ.get("DATABASE_URL") and os.environ.get("TEMPORAL_ADDRESS"):
        yield {k: os.environ[k] for k in NOT_INHERITED}
        return
    stack = StackProcess(out / "stack-data", out / "stack.log", env={"FLAKY": FLAKY})
    say(f"starting a private stack (log: {stack.log_path}) ...")
    stack.start(within=180)
    try:
        yield {
            "DATABASE_URL": postgres.dsn(stack.ports.postgres),
            "TEMPORAL_ADDRESS": f"127.0.0.1:{stack.ports.temporal}",
        }
    finally:
        stack.stop()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp, services(Path(tmp)) as svc:
        base_env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        base_env.update(svc, FLAKY=FLAKY, LOG_FORMAT="json")
        runs = []
        for run in range(1, RUNS + 1):
            result = one_run(run, base_env)
            say(json.dumps(result))
            runs.append(result)
    results = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "runs_count": RUNS,
        "idle_s": IDLE,
        "flaky": FLAKY,
        "summary": summarise(runs),
        "runs": runs,
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    say("\n".join(cold_start_report.cold_start_lines(results)))
    if WRITE_DOC:
        cold_start_report.COLD_START_JSON.write_text(json.dumps(results, indent=1) + "\n")
        cold_start_report.update_cold_start_section()
        say(f"wrote {cold_start_report.COLD_START_JSON} and {cold_start_report.DOC}")


if __name__ == "__main__":
    main()
