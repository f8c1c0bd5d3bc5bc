"""The `orderflow` CLI against the running stack: it starts, approves, cancels and
reads orders through the HTTP API."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from orderflow.cli import app
from orderflow.settings import get_settings
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.integration

runner = CliRunner()


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The CLI reads its token from the settings, which are cached per process.
    monkeypatch.setenv("API_TOKEN", API_TOKEN)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def cli(api_url: str, *args: str) -> str:
    result = runner.invoke(app, [*args, "--api", api_url])
    assert result.exit_code == 0, result.output
    return result.output


def status(api_url: str, order_id: str, *flags: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cli(api_url, "status", order_id, *flags))
    return out


def wait_state(api_url: str, order_id: str, states: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 40
    while True:
        now = status(api_url, order_id)
        if now["state"] in states:
            return now
        assert time.monotonic() < deadline, now
        time.sleep(0.2)


def test_start_approve_and_follow_an_order(api_url: str) -> None:
    oid = f"cli-{uuid.uuid4().hex[:10]}"
    assert f"started {oid}" in cli(api_url, "start", oid)
    assert f"approved {oid}" in cli(api_url, "approve", oid)
    final = wait_state(api_url, oid, {"COMPLETED", "CANCELLED", "FAILED"})
    assert final["state"] == "COMPLETED" and final["source"] == "database"
    assert "order_shipped" in cli(api_url, "events", oid)


def test_watch_follows_an_order_to_its_end(api_url: str) -> None:
    oid = f"cli-{uuid.uuid4().hex[:10]}"
    cli(api_url, "start", oid)
    cli(api_url, "approve", oid)
    out = cli(api_url, "watch", oid, "--timeout", "60")
    assert "COMPLETED" in out, out
    assert status(api_url, oid)["state"] == "COMPLETED"


def test_live_status_and_cancel_in_review(api_url: str) -> None:
    oid = f"cli-{uuid.uuid4().hex[:10]}"
    cli(api_url, "start", oid)
    wait_state(api_url, oid, {"AWAITING_APPROVAL"})
    live = status(api_url, oid, "--live")
    assert live["source"] == "workflow" and live["attempts"]["validate_order"] >= 1, live
    assert f"cancel accepted for {oid}" in cli(api_url, "cancel", oid, "--reason", "cli test")
    final = wait_state(api_url, oid, {"CANCELLED"})
    assert final["reason"] == "cli test"


def test_an_error_is_a_message_and_a_non_zero_exit(api_url: str) -> None:
    result = runner.invoke(
        app, ["approve", f"cli-missing-{uuid.uuid4().hex[:6]}", "--api", api_url]
    )
    assert result.exit_code == 1
    assert "404" in result.output and "not found" in result.output
