"""Key rotation on the real Temporal server: orders started while key A is current
complete after the workers switch to key B (A still accepted for decryption), every
payload of their histories is encrypted, and the histories replay with a keyring
holding both keys, not with B alone."""

from __future__ import annotations

import asyncio
import base64
import json

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from orderflow.models import OrderResult, OrderState
from orderflow.payload_codec import ENCODING, KEY_ID_METADATA, Keyring
from orderflow.temporal import data_converter
from tests.workers.harness import running_workers, wait_for_status
from tools.codec_cost import payloads_in
from workers.order.workflow import OrderWorkflow
from workers.shipping.workflow import ShippingWorkflow

ORDERS = 3
LOCAL_ACTIVITY_BOOKKEEPING = {
    *("seq", "attempt", "activity_id", "activity_type", "complete_time", "backoff"),
    *("original_schedule_time", "activation_index"),
}
KEY_A = base64.b64decode(Keyring.new_key())
KEY_B = base64.b64decode(Keyring.new_key())


async def test_orders_started_under_key_a_complete_after_switching_to_key_b(
    temporal_address: str, db: asyncpg.Pool
) -> None:
    under_a = Keyring({"a": KEY_A}, "a")
    rotated = Keyring({"a": KEY_A, "b": KEY_B}, "b")
    client_a = await Client.connect(temporal_address, data_converter=data_converter(under_a))
    client_b = await Client.connect(temporal_address, data_converter=data_converter(rotated))

    async with running_workers(client_a, db) as first:
        queues = (first.order_queue, first.shipping_queue)
        handles = [await first.start(review_timeout=120) for _ in range(ORDERS)]
        for handle in handles:
            await wait_for_status(handle, lambda s: s.state == OrderState.AWAITING_APPROVAL)

    # The workers restart with B current (A kept for decryption); the approvals and
    # everything after are written under B.
    async with running_workers(client_b, db, queues=queues):
        on_b = [client_b.get_workflow_handle(h.id, result_type=OrderResult) for h in handles]
        for handle in on_b:
            await handle.signal(OrderWorkflow.approve)
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in on_b)), 60)
    assert {r.state for r in results} == {OrderState.COMPLETED}

    histories: list[WorkflowHistory] = []
    for handle in on_b:
        histories.append(await handle.fetch_history())
        child = f"shipping-{handle.id.removeprefix('order-')}-run1"
        histories.append(await client_b.get_workflow_handle(child).fetch_history())
    payloads = [p for h in histories for e in h.events for p in payloads_in(e)]
    assert len(payloads) > ORDERS * 10
    # Every payload is encrypted but one the SDK's core writes itself, never through the
    # codec: a local-activity marker's bookkeeping (sequence, type, times), no user data.
    clear = [
        (e.event_type, json.loads(p.data))
        for h in histories
        for e in h.events
        for p in payloads_in(e)
        if p.metadata.get("encoding") != ENCODING
    ]
    assert {kind for kind, _ in clear} <= {EventType.EVENT_TYPE_MARKER_RECORDED}
    assert {key for _, data in clear for key in data} <= LOCAL_ACTIVITY_BOOKKEEPING
    for order_history in histories[::2]:
        keys = {
            p.metadata[KEY_ID_METADATA]
            for e in order_history.events
            for p in payloads_in(e)
            if p.metadata.get("encoding") == ENCODING
        }
        assert keys == {b"a", b"b"}, "the order's history holds payloads under both keys"

    # The replay gate's case: histories under an older key replay with every key in
    # the keyring; with the current key alone they cannot even be decoded.
    replayer = Replayer(
        workflows=[OrderWorkflow, ShippingWorkflow], data_converter=data_converter(rotated)
    )
    for history in histories:
        await replayer.replay_workflow(history)
    only_b = Replayer(
        workflows=[OrderWorkflow, ShippingWorkflow],
        data_converter=data_converter(Keyring({"b": KEY_B}, "b")),
    )
    with pytest.raises(Exception, match="UnknownKey"):
        await only_b.replay_workflow(histories[0])
