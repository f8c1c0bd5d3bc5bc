"""What the payload codec costs per order, measured on real orders' histories.

    python -m tools.codec_cost [--orders 50]    # against TEMPORAL_ADDRESS, PAYLOAD_KEYS

Takes the latest completed orders (and their shipping runs) from Temporal, decrypts
their payloads with PAYLOAD_KEYS, and times, on this machine's CPU, what the codec
does with each: one encryption where it is written and one decryption where it is
read (a payload read again, by a replay or a query, costs one decryption more).
Also what zlib before encryption would save and cost. Prints one JSON object;
docs/decisions/0010-payload-encryption.md has a dated run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import zlib
from collections.abc import Callable, Sequence

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from orderflow.payload_codec import ENCODING, EncryptionCodec
from orderflow.settings import get_settings


def payloads_in(message: Message) -> list[Payload]:
    """Every Payload anywhere inside a protobuf message."""
    if isinstance(message, Payload):
        return [message]
    found: list[Payload] = []
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            items = [value]
        elif field.message_type.GetOptions().map_entry:
            items = list(value.values())
        else:
            items = list(value)
        for item in items:
            if isinstance(item, Message):
                found.extend(payloads_in(item))
    return found


def _per_call_us(fn: Callable[[], object], items: int, rounds: int = 7) -> float:
    """Median over ``rounds`` of the time per item, in microseconds."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) / items * 1e6)
    return statistics.median(times)


async def order_payloads(client: Client, orders: int) -> list[list[Payload]]:
    """The plain payloads of each of the latest completed orders, its children's too."""
    out: list[list[Payload]] = []
    query = "WorkflowType = 'OrderWorkflow' AND ExecutionStatus = 'Completed'"
    async for execution in client.list_workflows(query, limit=orders):
        order_id = execution.id.removeprefix("order-")
        histories = [await client.get_workflow_handle(execution.id).fetch_history()]
        async for child in client.list_workflows(f"WorkflowId STARTS_WITH 'shipping-{order_id}-'"):
            histories.append(await client.get_workflow_handle(child.id).fetch_history())
        out.append([p for h in histories for e in h.events for p in payloads_in(e)])
    return out


def measure(per_order: Sequence[Sequence[Payload]], codec: EncryptionCodec) -> dict[str, object]:
    sealed = [p for order in per_order for p in order if p.metadata.get("encoding") == ENCODING]
    plain = [codec.decrypt(p) for p in sealed]
    orders = len(per_order)
    raw = [p.SerializeToString() for p in plain]
    encrypt_us = _per_call_us(lambda: [codec.encrypt(p) for p in plain], len(plain))
    decrypt_us = _per_call_us(lambda: [codec.decrypt(p) for p in sealed], len(sealed))
    zlib_us = _per_call_us(lambda: [zlib.compress(b, 6) for b in raw], len(raw))
    unzip = [zlib.compress(b, 6) for b in raw]
    unzlib_us = _per_call_us(lambda: [zlib.decompress(b) for b in unzip], len(unzip))
    per_order_payloads = len(plain) / orders
    return {
        "orders": orders,
        "payloads_per_order": round(per_order_payloads, 1),
        "clear_payloads_per_order": round(
            (sum(len(o) for o in per_order) - len(sealed)) / orders, 1
        ),
        "plain_bytes_per_order": round(sum(map(len, raw)) / orders),
        "encrypted_bytes_per_order": round(sum(p.ByteSize() for p in sealed) / orders),
        "encrypt_us_per_payload": round(encrypt_us, 1),
        "decrypt_us_per_payload": round(decrypt_us, 1),
        "codec_ms_per_order_write_and_read_once": round(
            per_order_payloads * (encrypt_us + decrypt_us) / 1000, 3
        ),
        "zlib6_saves_bytes_per_order": round((sum(map(len, raw)) - sum(map(len, unzip))) / orders),
        "zlib6_ms_per_order_compress_and_decompress": round(
            per_order_payloads * (zlib_us + unzlib_us) / 1000, 3
        ),
    }


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=50)
    args = parser.parse_args(argv)
    settings = get_settings()
    codec = EncryptionCodec(settings.keyring())
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    per_order = await order_payloads(client, args.orders)
    if not per_order:
        raise SystemExit("no completed orders in this Temporal: run some first (make load)")
    print(json.dumps(measure(per_order, codec), indent=2))  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main())
