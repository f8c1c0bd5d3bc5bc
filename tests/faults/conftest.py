"""One fault stack for the module; each test leaves it healed for the next."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.faults.stack import FaultStack, api


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    s = FaultStack(tmp_path_factory.mktemp("faults"))
    try:
        s.start(within=180)
        yield s
    finally:
        s.stop()


@pytest.fixture
async def http(stack: FaultStack) -> AsyncIterator[httpx.AsyncClient]:
    async with api(stack) as client:
        yield client
    stack.release_all()  # a failed test must not leave a component held down
