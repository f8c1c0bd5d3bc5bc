"""The in-process app pointed at addresses where nothing listens: an outage of
both dependencies, without stopping the session's real services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from functions import deps
from functions.main import app
from orderflow.devstack.launcher import free_port
from orderflow.settings import Settings


@pytest.fixture
def offline_client() -> Iterator[tuple[TestClient, Settings]]:
    """The app pointed at a database and Temporal where nothing listens."""
    settings = Settings(
        database_url=f"postgresql://orderflow:hunter2-pw@127.0.0.1:{free_port()}/orderflow",
        temporal_address=f"127.0.0.1:{free_port()}",
        db_command_timeout_seconds=1,
    )
    resources = deps.Resources(settings)
    app.dependency_overrides[deps.current_resources] = lambda: resources
    app.dependency_overrides[deps.current_settings] = lambda: settings
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, settings
    app.dependency_overrides.clear()
