"""The order worker: OrderWorkflow and its activities on the `orders` task queue.

python -m workers.order
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from orderflow.settings import Settings
from workers import process
from workers.order.activities import OrderActivities
from workers.order.workflow import OrderWorkflow
from workers.reconciler import Reconciler


def make_worker(client: Client, settings: Settings, pool: asyncpg.Pool) -> Worker:
    return process.build_worker(
        client,
        settings,
        settings.order_task_queue,
        workflows=[OrderWorkflow],
        activities=OrderActivities(pool).all(),
        kind="order-worker",
    )


def reconcile(
    client: Client, settings: Settings, pool: asyncpg.Pool
) -> Coroutine[Any, Any, None] | None:
    """Orders Temporal ended are closed by the order workers (workers/reconciler.py)."""
    if not settings.reconcile_interval_seconds:
        return None
    return Reconciler(client, pool, settings).run()


def main() -> None:
    process.main(
        "order-worker",
        lambda s: s.order_task_queue,
        lambda s: s.order_worker_http_port,
        make_worker,
        reconcile,
    )
