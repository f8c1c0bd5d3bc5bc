"""`make cold-start`'s section of docs/benchmarks.md: written by loadtest/cold_start.py,
kept as it is when `make bench` rewrites the rest of the page."""

from __future__ import annotations

import json
from typing import Any

from orderflow.settings import REPO_ROOT

DOC = REPO_ROOT / "docs" / "benchmarks.md"
# `make cold-start`'s last results (loadtest/cold_start.py); kept in the page by both.
COLD_START_JSON = REPO_ROOT / "docs" / "cold-start.json"
COLD_START_HEADING = "## Scale to zero: waking from zero"

_COLD_START_ROWS = (
    ("api_spawn_to_ready_s", "API: `python -m functions` spawned -> first 200 on `/readyz`"),
    ("api_spawn_to_first_order_s", "API: spawned -> first `POST /orders/{id}/start` answered 202"),
    (
        "api_first_order_request_s",
        "API: that first start request alone (it opens the Temporal and PostgreSQL connections)",
    ),
    ("worker_spawn_to_ready_s", "order worker: `python -m workers.order` spawned -> `/readyz` 200"),
    (
        "worker_spawn_to_completed_s",
        "workers spawned -> the waiting order `COMPLETED` (read with `status?wait`)",
    ),
)


def cold_start_lines(results: dict[str, Any]) -> list[str]:
    m, summary = results["machine"], results["summary"]
    states = sorted({r["state_while_no_worker"] for r in results["runs"]})
    finals = sorted({r["final_state"] for r in results["runs"]})
    return [
        COLD_START_HEADING,
        "",
        f"Written by `make cold-start` on {results['when']} ({m['cpus']} CPUs, Python "
        f"{m['python']}): {results['runs_count']} runs, each with fresh processes and task "
        f"queues of its own against one running Temporal dev server and PostgreSQL, "
        f"FLAKY={results['flaky']}; client's clock. Each order was started on the freshly "
        f"spawned API, approved, and left {results['idle_s']:g} s with no worker polling its "
        f"queue (its state then: {', '.join(states)}); then the workers were spawned "
        f"(final states: {', '.join(finals)}). What a cluster adds is in "
        "[kubernetes.md](kubernetes.md#scale-to-zero).",
        "",
        "| from -> to | median | min | max |",
        "|---|---|---|---|",
        *(
            f"| {label} | {summary[key]['median']:.2f} s | {summary[key]['min']:.2f} s "
            f"| {summary[key]['max']:.2f} s |"
            for key, label in _COLD_START_ROWS
        ),
        "",
    ]


def stored_cold_start_lines() -> list[str]:
    if not COLD_START_JSON.exists():
        return []
    return cold_start_lines(json.loads(COLD_START_JSON.read_text()))


def update_cold_start_section() -> None:
    """Replace (or append) the section in docs/benchmarks.md, leaving the rest as it is."""
    text = DOC.read_text()
    head, found, rest = text.partition(COLD_START_HEADING)
    # The section runs to the next heading of its level, or to the end.
    tail = rest[rest.find("\n## ") + 1 :] if found and "\n## " in rest else ""
    section = "\n".join(stored_cold_start_lines())
    DOC.write_text(head.rstrip("\n") + "\n\n" + section + ("\n" + tail if tail else ""))
