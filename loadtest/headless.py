"""The load tool's command line for a headless run in a child process (used by
`make bench` and the tests; `make load` spells it out in the Makefile)."""

from __future__ import annotations

import sys
from pathlib import Path

from orderflow.settings import REPO_ROOT

LOCUSTFILE = REPO_ROOT / "loadtest" / "locustfile.py"


def command(host: str, report_dir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "--host",
        host,
        "--stop-timeout",
        "10",
        "--report-dir",
        str(report_dir),
        *args,
    ]
