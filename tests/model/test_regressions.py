"""Every failing case the protocol model found, kept as a named test.

Each replays the machine's shrunk sequence of steps on the same runtime, so a
regression fails here by name, whatever the random exploration happens to try.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.model.protocol import OrderProtocol
from tests.model.runtime import ModelRuntime


def replay(model: ModelRuntime, *steps: Callable[[OrderProtocol], object]) -> None:
    OrderProtocol.runtime = model
    machine = OrderProtocol()
    machine.start(review="long")
    for step in steps:
        step(machine)
    machine.teardown()


def test_an_address_accepted_before_a_cancel_is_the_address_stored(model: ModelRuntime) -> None:
    # The change was accepted (202, being applied), the order was cancelled before it
    # was stored, and the cancelled order kept the old address in the database while
    # GET /status (the workflow's summary) showed the new one.
    replay(model, OrderProtocol.update_address, OrderProtocol.cancel)


def test_an_address_accepted_before_the_order_is_stored_is_the_one_shipped(
    model: ModelRuntime,
) -> None:
    # Accepted while the order was still being received: storing it found no row and
    # said so (False), which the workflow ignored; the row was then created with the
    # old address, and the order shipped to the new one. (Storing now waits for the
    # row, so the change reaches its gate only once the order is received.)
    replay(
        model,
        OrderProtocol.update_address,
        lambda m: m.wait_until_held("address_updated", within=4),
        OrderProtocol.store_an_address,
        *[OrderProtocol.advance] * 2,
        OrderProtocol.approve,
        *[OrderProtocol.advance] * 4,
    )


def test_a_cancel_acted_on_in_a_task_the_worker_never_completed_is_not_lost(
    model: ModelRuntime,
) -> None:
    # The cancel was accepted and the order closed CANCELLED in the database, inside a
    # workflow task that never completed (the worker was replaced): the new worker did
    # not know of the cancel, and the workflow went on to charge and ship an order
    # the database said was cancelled.
    replay(
        model,
        OrderProtocol.advance,
        OrderProtocol.advance,
        lambda m: m.restart_worker("shipping"),
        OrderProtocol.cancel,
        OrderProtocol.store_an_address,
        OrderProtocol.store_an_address,
        lambda m: m.restart_worker("shipping"),
        lambda m: m.restart_worker("order"),
        OrderProtocol.store_an_address,
    )


def test_a_cancel_accepted_while_shipping_waits_for_an_address_is_honoured(
    model: ModelRuntime,
) -> None:
    # The bug 1: charged, shipping waiting for an accepted address change to be
    # stored, a cancel accepted (202) in that wait, and the order shipped all the same.
    # (The approval reaches the workflow once the held change is handed to the server.)
    replay(
        model,
        *[OrderProtocol.advance] * 2,
        OrderProtocol.update_address,
        lambda m: m.wait_until_held("address_updated", within=10),
        OrderProtocol.approve,
        lambda m: m.wait_until_held("payment_charged", within=10),
        OrderProtocol.advance,
        OrderProtocol.cancel,
        OrderProtocol.store_an_address,
        *[OrderProtocol.advance] * 4,
    )


def test_a_cancel_is_refused_once_the_order_is_failing(model: ModelRuntime) -> None:
    # Found by `make test-model`: validation failed for good, and while the order
    # recorded its decision to fail a cancel was accepted (202); it ended FAILED.
    replay(model, OrderProtocol.advance, OrderProtocol.break_the_step, OrderProtocol.cancel)


def test_a_cancel_after_an_address_change_and_the_approval_is_honoured(
    model: ModelRuntime,
) -> None:
    # Bug 1 as `make test-model` found it on the code without its fix, shrunk: the
    # approval and the cancel both land while the address change is being stored.
    replay(
        model,
        *[OrderProtocol.advance] * 2,
        OrderProtocol.update_address,
        OrderProtocol.approve,
        OrderProtocol.cancel,
    )
