"""The smoke order (`helm test`): its failure paths. The success path runs in
tests/charts/test_local_processes.py against the chart's processes."""

from __future__ import annotations

import httpx
import pytest

from orderflow import smoke
from orderflow.devstack.launcher import free_port
from orderflow.settings import Settings


def test_bearer_token_is_sent_when_configured() -> None:
    with smoke._client(Settings(api_token="t-1")) as client:
        assert client.headers["Authorization"] == "Bearer t-1"
    with smoke._client(Settings()) as client:
        assert "Authorization" not in client.headers


def test_unreachable_api_is_an_error() -> None:
    settings = Settings(api_base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(httpx.ConnectError):
        smoke.run(settings, deadline_seconds=1)


def test_main_exits_nonzero_when_the_order_cannot_be_placed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        smoke, "get_settings", lambda: Settings(api_base_url=f"http://127.0.0.1:{free_port()}")
    )
    assert smoke.main() == 1
