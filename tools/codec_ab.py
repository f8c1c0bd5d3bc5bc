"""CPU per order of the client and both workers, with and without the payload codec.

    python -m tools.codec_ab [--orders 60] [--rounds 3]

One process runs the real OrderWorkflow and ShippingWorkflow on in-process workers
(the tests' harness, flaky_call on) against a throw-away Temporal dev server and
PostgreSQL, and starts and approves the orders itself. Rounds alternate: the
project's converter without a codec, then with the AES-256-GCM codec. What is
counted is this process's CPU time (user + system) per order: the SDK's payload
walk and the codec included, the Temporal server's and PostgreSQL's not (a codec
changes nothing for them but some 30 bytes a payload). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
from pathlib import Path

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from orderflow.db import create_pool
from orderflow.models import OrderState
from orderflow.payload_codec import Keyring
from orderflow.settings import Settings
from orderflow.temporal import DATA_CONVERTER, data_converter
from tests.conftest import TEMPORAL_BIN, LocalPostgres
from tests.workers.harness import running_workers
from workers.order.workflow import OrderWorkflow


async def _round(address: str, converter: DataConverter, dsn: str, orders: int) -> float:
    client = await Client.connect(address, data_converter=converter)
    pool = await create_pool(Settings(database_url=dsn, db_pool_max_size=20))
    try:
        async with running_workers(client, pool) as h:
            began = os.times()
            handles = []
            for _ in range(orders):
                handle = await h.start(review_timeout=120)
                await handle.signal(OrderWorkflow.approve)
                handles.append(handle)
            results = await asyncio.gather(*(x.result() for x in handles))
            ended = os.times()
        assert {r.state for r in results} == {OrderState.COMPLETED}, results
        cpu = (ended.user - began.user) + (ended.system - began.system)
        return cpu / orders * 1000
    finally:
        await pool.close()


async def _rounds(dsn: str, orders: int, rounds: int) -> tuple[list[float], list[float]]:
    encrypted = data_converter(Keyring.parse(f"ab:{Keyring.new_key()}"))
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_BIN), dev_server_log_level="error"
    )
    try:
        address = env.client.service_client.config.target_host
        await _round(address, DATA_CONVERTER, dsn, 10)  # warm-up: imports, caches
        plain: list[float] = []
        coded: list[float] = []
        for _ in range(rounds):
            plain.append(await _round(address, DATA_CONVERTER, dsn, orders))
            coded.append(await _round(address, encrypted, dsn, orders))
        return plain, coded
    finally:
        await env.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        os.chmod(root, 0o755)  # the PostgreSQL server runs as its own user
        pg = LocalPostgres(Path(root))
        pg.start()
        try:
            plain, coded = asyncio.run(_rounds(pg.dsn, args.orders, args.rounds))
        finally:
            pg.stop()
    print(  # noqa: T201
        json.dumps(
            {
                "orders_per_round": args.orders,
                "cpu_ms_per_order_without_codec": [round(x, 1) for x in plain],
                "cpu_ms_per_order_with_codec": [round(x, 1) for x in coded],
                "median_without": round(statistics.median(plain), 1),
                "median_with": round(statistics.median(coded), 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
