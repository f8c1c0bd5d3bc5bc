"""Expand/contract (docs/releasing.md): the previous release's workers run orders
against the database as this code's migrations leave it.

During ``helm upgrade`` the migrations Job runs first (pre-upgrade hook), and the old
workers keep working on the new schema until their pods are replaced; after a
``helm rollback`` the old workers run on it for good (migrations are not undone).
So a migration may only add (expand); removing what the previous release uses
(contract) waits for a later release.

The previous release is the newest ``v*`` git tag (``PREVIOUS_RELEASE`` names
another ref). Its source goes into a temporary venv: installed without
dependencies when its pinned dependencies are this checkout's (they are resolved
from this venv through a .pth file; minutes saved, nothing downloaded), in full
otherwise. Its order and shipping workers then take an order, started by this
code's client as the new API would during a rollout, from start to COMPLETED.
Without any tag (before the first release) there is nothing to compare with:
skipped, saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
import site
import subprocess
import sys
import tarfile
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from orderflow import store
from orderflow.devstack.launcher import free_port
from orderflow.models import Address, Item, OrderInput, OrderState
from orderflow.settings import REPO_ROOT
from tests.conftest import TEST_PAYLOAD_KEYS

pytestmark = pytest.mark.timeout(300)


def previous_release() -> str | None:
    ref = os.environ.get("PREVIOUS_RELEASE")
    if ref:
        return ref
    tags = subprocess.run(
        ["git", "tag", "--list", "v*", "--sort=-v:refname"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return tags[0] if tags else None


def _dependencies(pyproject: Path) -> list[str]:
    return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])


def install(ref: str, root: Path) -> Path:
    """The release's code in a venv of its own; returns its python."""
    src = root / "src"
    src.mkdir()
    archive = root / "src.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "-o", str(archive), ref], cwd=REPO_ROOT, check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if _dependencies(src / "pyproject.toml") == _dependencies(REPO_ROOT / "pyproject.toml"):
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # Appended after the venv's own site-packages: the release's code wins.
        Path(purelib, "current-dependencies.pth").write_text(
            "\n".join(site.getsitepackages()) + "\n"
        )
        subprocess.run([*pip, "--no-deps", str(src)], check=True)
    else:
        subprocess.run([*pip, str(src)], check=True)
    return python


def start_workers(python: Path, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    # Run from the venv, not this checkout: its packages must not shadow the release's.
    where = subprocess.run(
        [str(python), "-c", "import workers.order.workflow as w; print(w.__file__)"],
        env=env,
        cwd=python.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(python.parent.parent)), where
    return [
        subprocess.Popen(
            [str(python), "-m", module],
            env=env,
            cwd=python.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for module in ("workers.order", "workers.shipping")
    ]


@pytest.fixture(scope="module")
def old_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    ref = previous_release()
    if ref is None:
        pytest.skip("no v* tag yet: no previous release to run against this schema")
    yield ref, install(ref, tmp_path_factory.mktemp("previous-release"))


async def test_previous_release_workers_complete_an_order_on_the_migrated_schema(
    old_python: tuple[str, Path],
    postgres_dsn: str,  # migrated by this checkout's migrations (tests/conftest.py)
    temporal_address: str,
    temporal_client: Client,
    db: asyncpg.Pool,
) -> None:
    ref, python = old_python
    queues = {"ORDER_TASK_QUEUE": f"old-orders-{uuid.uuid4()}"}
    queues["SHIPPING_TASK_QUEUE"] = f"old-shipping-{uuid.uuid4()}"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        "DATABASE_URL": postgres_dsn,
        "TEMPORAL_ADDRESS": temporal_address,
        "FLAKY": "off",
        "ORDER_WORKER_HTTP_PORT": str(free_port()),
        "SHIPPING_WORKER_HTTP_PORT": str(free_port()),
        **queues,
    }
    workers = start_workers(python, env)
    oid = f"prev-{uuid.uuid4().hex[:10]}"
    try:
        handle = await temporal_client.start_workflow(
            "OrderWorkflow",
            OrderInput(
                order_id=oid,
                payment_id=f"pay-{oid}",
                address=Address(
                    line1="1 Main St", city="Berlin", postal_code="10115", country="DE"
                ),
                items=[Item(sku="ABC", qty=1)],
                review_timeout_seconds=60,
                shipping_max_attempts=3,
                shipping_task_queue=queues["SHIPPING_TASK_QUEUE"],
            ),
            id=f"order-{oid}",
            task_queue=queues["ORDER_TASK_QUEUE"],
        )
        await handle.signal("approve")
        await asyncio.wait_for(handle.result(), timeout=90)
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(30)
    async with db.acquire() as conn:
        row = await store.get_order(conn, oid)
        events = [e["type"] for e in await store.list_events(conn, oid)]
    assert row is not None and row.state == OrderState.COMPLETED, (ref, row)
    assert events[0] == "order_received" and events[-1] == "order_shipped", (ref, events)


# Run by the previous release's python: its workflows replay this code's histories.
REPLAY_IN_RELEASE = """
import asyncio, json, sys
from pathlib import Path
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from orderflow.payload_codec import Keyring
from orderflow.temporal import data_converter
from workers.deadlines import DeadlineInterceptor
from workers.order.workflow import OrderWorkflow
from workers.shipping.workflow import ShippingWorkflow

async def main():
    # As the release's workers run: its converter with the key the dev set was
    # recorded under (tests/conftest.py), and its workflow interceptor.
    replayer = Replayer(
        workflows=[OrderWorkflow, ShippingWorkflow],
        data_converter=data_converter(Keyring.parse(sys.argv[2])),
        interceptors=[DeadlineInterceptor()],
    )
    failed = []
    files = sorted(p for p in Path(sys.argv[1]).glob("*.json") if p.name != "manifest.json")
    for path in files:
        history = WorkflowHistory.from_json(path.name, path.read_text())
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failed.append(f"{path.name}: {result.replay_failure!r}")
    print(json.dumps({"replayed": len(files), "failed": failed}))

asyncio.run(main())
"""


def test_previous_release_replays_this_codes_histories(old_python: tuple[str, Path]) -> None:
    """``helm rollback`` hands the orders in flight, started or advanced by this code,
    back to the previous release's workers: its workflows must replay this code's
    histories (the dev set), or those orders stall (a non-deterministic workflow
    task is retried, not failed) until the release is rolled forward again. When a
    release cannot offer that, its CHANGELOG and docs/kubernetes.md#upgrading must
    say that a rollback needs the orders drained first."""
    ref, python = old_python
    dev_set = REPO_ROOT / "tests" / "replay" / "histories" / "dev"
    result = subprocess.run(
        [str(python), "-c", REPLAY_IN_RELEASE, str(dev_set), TEST_PAYLOAD_KEYS],
        cwd=python.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replayed"] > 0
    assert report["failed"] == [], (ref, report["failed"])
