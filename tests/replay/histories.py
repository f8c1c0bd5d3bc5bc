"""The committed workflow histories of the replay gate, and how they are replayed.

``tests/replay/histories/<set>/`` holds one set: ``dev`` is the current code's
(``make histories`` records it afresh), ``v0.1.0`` and later are the sets of
released versions, frozen once committed (docs/releasing.md). Each set has a
``manifest.json`` naming every path an order took and the history files it left:
the order's own (``<path>.json``) and each shipping run's
(``<path>.shipping-run<N>.json``), in the JSON that ``temporal workflow show
--output json`` prints.

Every history of every set must replay against the current workflows
(tests/replay/test_replay.py): a change to the commands a workflow issues for
history that running orders already have is a non-determinism error, caught here
instead of in the orders that are in flight during an upgrade.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Replayer

from tests.conftest import TEST_CONVERTER
from workers.deadlines import DeadlineInterceptor
from workers.order.workflow import OrderWorkflow
from workers.shipping.workflow import ShippingWorkflow

HISTORIES = Path(__file__).parent / "histories"
DEV_SET = "dev"
MANIFEST = "manifest.json"

# Every path an order can take, with what the recorder does to steer it there. The
# dev set must have each; a released set keeps the paths it was recorded with.
REQUIRED_PATHS: dict[str, str] = {
    "approved_and_shipped": "approved in review, charged, shipped on the first run",
    "review_timer_expired": "nobody approves: the review timer cancels it, nothing charged",
    "cancelled_before_payment": "cancel update while awaiting approval, nothing charged",
    "cancelled_after_payment": "cancel update while charging: refund, CANCELLED",
    "address_changed_before_shipping": "update_address while charging: ships to the new one",
    "shipping_run_failed_and_retried": "dispatch fails 12 times in run 1; run 2 ships",
    "all_shipping_runs_failed": "dispatch fails in all 3 runs: refund, FAILED",
    "step_handed_to_server": (
        "validation fails 30 local attempts in a row: handed to one server-retried "
        "activity, whose first attempt fails and second succeeds"
    ),
    "worker_restart_mid_order": (
        "the workers stop while the order awaits approval; new workers on the same "
        "task queues take it over (replaying it) and finish it"
    ),
    "invalid_order": "validation rejects the items: FAILED, nothing charged",
}


@dataclass(frozen=True)
class Recorded:
    set_name: str
    path: str
    file: Path

    @property
    def id(self) -> str:
        return f"{self.set_name}/{self.file.name.removesuffix('.json')}"


def set_dirs() -> list[Path]:
    if not HISTORIES.is_dir():
        return []
    return sorted(d for d in HISTORIES.iterdir() if d.is_dir())


def manifest(set_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((set_dir / MANIFEST).read_text())
    return loaded


def recorded(set_dir: Path) -> list[Recorded]:
    """Every history the set's manifest names (the files need not exist: the test says so)."""
    paths: dict[str, Any] = manifest(set_dir)["paths"]
    return [
        Recorded(set_dir.name, path, set_dir / name)
        for path, entry in sorted(paths.items())
        for name in entry["histories"]
    ]


def all_recorded() -> list[Recorded]:
    return [r for d in set_dirs() if (d / MANIFEST).is_file() for r in recorded(d)]


def load(history: Recorded) -> WorkflowHistory:
    """The file is the bare history (``temporal workflow show --output json``), so one
    taken from a real deployment can be committed as it is; its name stands in for the
    workflow id, which that JSON does not carry."""
    return WorkflowHistory.from_json(history.id, history.file.read_text())


def replayer() -> Replayer:
    """The current workflows, configured as the workers run them: the project's data
    converter with the tests' payload key (histories are recorded encrypted under it;
    older, unencrypted ones decode as they are), the worker's DeadlineInterceptor
    (workers/process.build_worker) and the
    TracingInterceptor the workers inherit from their client when tracing is on
    (orderflow/tracing.py). Sandboxed, as the workflow tests run them: stricter than
    the workers' default, never more lenient."""
    return Replayer(
        workflows=[OrderWorkflow, ShippingWorkflow],
        data_converter=TEST_CONVERTER,
        interceptors=[DeadlineInterceptor(), TracingInterceptor()],
    )
