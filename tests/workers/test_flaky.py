"""flaky_call behaves exactly as specified: one draw, 0.33 raise / 0.34 hang / 0.33 return."""

from __future__ import annotations

import asyncio
import random

import pytest

from workers import flaky


@pytest.mark.parametrize(
    ("draw", "outcome"),
    [
        (0.0, "raise"),
        (0.3299, "raise"),
        (0.33, "hang"),
        (0.6699, "hang"),
        (0.67, "ok"),
        (0.99, "ok"),
    ],
)
async def test_outcome_follows_the_draw(
    monkeypatch: pytest.MonkeyPatch, draw: float, outcome: str
) -> None:
    monkeypatch.setattr(random, "random", lambda: draw)
    if outcome == "raise":
        with pytest.raises(RuntimeError, match=r"^Forced failure for testing$"):
            await flaky.flaky_call()
    elif outcome == "hang":
        task = asyncio.create_task(flaky.flaky_call())
        await asyncio.sleep(0.05)
        assert not task.done(), "a hanging draw must keep sleeping (the caller's timeout cuts it)"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        await asyncio.wait_for(flaky.flaky_call(), 0.05)


async def test_hang_is_300_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(random, "random", lambda: 0.5)
    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    await flaky.flaky_call()
    assert slept == [300]


async def test_distribution_seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(20261126)
    monkeypatch.setattr(random, "random", rng.random)

    async def no_sleep(_seconds: float) -> None:
        raise TimeoutError

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    counts = {"raise": 0, "hang": 0, "ok": 0}
    n = 20_000
    for _ in range(n):
        try:
            await flaky.flaky_call()
            counts["ok"] += 1
        except RuntimeError:
            counts["raise"] += 1
        except TimeoutError:
            counts["hang"] += 1
    # 4 standard deviations at n=20000 is about 0.013.
    assert abs(counts["raise"] / n - 0.33) < 0.015
    assert abs(counts["hang"] / n - 0.34) < 0.015
    assert abs(counts["ok"] / n - 0.33) < 0.015


async def test_switch_off_skips_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.0)
    flaky.set_enabled(False)
    try:
        await flaky.flaky_call()
    finally:
        flaky.set_enabled(True)
    with pytest.raises(RuntimeError):
        await flaky.flaky_call()


def test_forced_failures_travel_without_their_stack_trace() -> None:
    # The converter every process uses (orderflow/temporal.py): the forced failure's
    # trace is noise repeated a dozen times an order; any other error keeps its trace.
    from temporalio.api.failure.v1 import Failure

    from orderflow.temporal import DATA_CONVERTER

    def raised(error: Exception) -> Exception:
        try:
            raise error
        except Exception as caught:
            return caught

    forced, other = Failure(), Failure()
    DATA_CONVERTER.failure_converter.to_failure(
        raised(RuntimeError(flaky.FORCED_FAILURE)), DATA_CONVERTER.payload_converter, forced
    )
    DATA_CONVERTER.failure_converter.to_failure(
        raised(RuntimeError("disk on fire")), DATA_CONVERTER.payload_converter, other
    )
    assert forced.message == flaky.FORCED_FAILURE and forced.stack_trace == ""
    assert forced.application_failure_info.type == "RuntimeError"
    assert other.message == "disk on fire" and "raise error" in other.stack_trace
