from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.model.runtime import ModelRuntime
from workers import flaky


@pytest.fixture(scope="module")
def model(temporal_address: str, postgres_dsn: str) -> Iterator[ModelRuntime]:
    """Workers whose steps wait at the model's gates (FLAKY off: the gates decide)."""
    flaky.set_enabled(False)
    runtime = ModelRuntime(temporal_address, postgres_dsn)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()
        flaky.set_enabled(True)
