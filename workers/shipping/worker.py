"""The shipping worker: ShippingWorkflow and its activities on the `shipping` task queue.

python -m workers.shipping
"""

from __future__ import annotations

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from orderflow.settings import Settings
from workers import process
from workers.shipping.activities import ShippingActivities
from workers.shipping.workflow import ShippingWorkflow


def make_worker(client: Client, settings: Settings, pool: asyncpg.Pool) -> Worker:
    acts = ShippingActivities(pool)
    return process.build_worker(
        client,
        settings,
        settings.shipping_task_queue,
        workflows=[ShippingWorkflow],
        activities=[acts.package_prepared, acts.carrier_dispatched],
        kind="shipping-worker",
    )


def main() -> None:
    process.main(
        "shipping-worker",
        lambda s: s.shipping_task_queue,
        lambda s: s.shipping_worker_http_port,
        make_worker,
    )
