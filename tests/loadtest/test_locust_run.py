"""`make load`'s tool really drives the API: a short headless Locust run against
the running stack, flaky_call on, reading its JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orderflow.settings import REPO_ROOT
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.integration


def test_sequential_orders_complete_and_are_reported(api_url: str, tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(REPO_ROOT / "loadtest" / "locustfile.py"),
            "--headless",
            "--only-summary",
            "--host",
            api_url,
            "--scenario",
            "sequential",
            "--orders",
            "3",
            "--report-dir",
            str(report),
            "--stop-timeout",
            "10",
            "--api-token",
            API_TOKEN,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((report / "summary.json").read_text())
    assert summary["orders"] == 3
    assert summary["by_state"] == {"COMPLETED": 3}
    assert summary["latency"]["p50"] > 0
    assert (report / "latency.png").stat().st_size > 1000
    assert "POST /orders/[id]/start" in summary["http"]
