"""`make load`'s tool really drives the API: a short headless Locust run against
the running stack, flaky_call on, reading its JSON report."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from loadtest import headless
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.integration


def run_locust(api_url: str, report: Path, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        headless.command(api_url, report, "--api-token", API_TOKEN, *args),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary: dict[str, Any] = json.loads((report / "summary.json").read_text())
    return summary


def test_sequential_orders_complete_and_are_reported(api_url: str, tmp_path: Path) -> None:
    report = tmp_path / "report"
    summary = run_locust(api_url, report, "--scenario", "sequential", "--orders", "3")
    assert summary["orders"] == 3
    assert summary["by_state"] == {"COMPLETED": 3}
    assert summary["latency"]["p50"] > 0
    assert (report / "latency.png").stat().st_size > 1000
    assert "POST /orders/[id]/start" in summary["http"]


def test_rate_scenario_keeps_its_rate_and_adds_the_extra_reads(
    api_url: str, tmp_path: Path
) -> None:
    summary = run_locust(
        api_url,
        tmp_path / "report",
        "--orders-per-second",
        "4",
        "--duration",
        "3",
        "--reads-per-second",
        "10",
    )
    # An open model on a timetable: rate x duration orders, not a burst per user.
    assert 10 <= summary["orders"] <= 13, summary
    assert summary["by_state"] == {"COMPLETED": summary["orders"]}
    status = summary["http"]["GET /orders/[id]/status"]
    # The pollers read each order about once a second; the extra reads add ~30.
    assert status["requests"] >= 20 and status["failures"] == 0, status
    assert status["per_second"] > 0
    # The client's clock includes the workflow's and the poll interval on top.
    assert summary["latency"]["p50"] >= summary["workflow_latency"]["p50"]
    assert summary["offered_per_second"] == 4 and summary["lateness"]["max"] is not None


def test_long_poll_mode_follows_each_order_with_waiting_reads(api_url: str, tmp_path: Path) -> None:
    summary = run_locust(
        api_url,
        tmp_path / "report",
        "--orders-per-second",
        "2",
        "--duration",
        "2",
        "--wait-seconds",
        "15",
    )
    assert summary["by_state"] == {"COMPLETED": summary["orders"]}, summary
    assert summary["follow"] == "long poll status?wait=15"
    waits = summary["http"]["GET /orders/[id]/status?wait"]
    assert "GET /orders/[id]/status" not in summary["http"]  # nobody polled
    # One waiting read per order is enough when it answers on the terminal state.
    assert waits["failures"] == 0 and waits["requests"] <= 2 * summary["orders"], waits
