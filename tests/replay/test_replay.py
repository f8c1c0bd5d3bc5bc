"""The replay gate: every committed history replays against the current workflows.

A history that no longer replays is an order that would fail with a
non-determinism error if it were in flight while this code was deployed.
Histories are recorded by ``make histories`` (tests/replay/record.py); when to add
a set is in docs/releasing.md. No services needed: replay runs in the process.
"""

from __future__ import annotations

import json

import pytest
from temporalio import workflow
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from orderflow.models import OrderInput, OrderResult
from tests.conftest import TEST_CONVERTER
from tests.replay.histories import (
    DEV_SET,
    HISTORIES,
    MANIFEST,
    REQUIRED_PATHS,
    Recorded,
    all_recorded,
    load,
    manifest,
    replayer,
    set_dirs,
)


def test_every_set_is_complete() -> None:
    """There are histories; the dev set has every required path; each set has exactly
    the files its manifest names, and each path's order ran to its end."""
    sets = set_dirs()
    assert sets, f"no history sets under {HISTORIES}: run `make histories`"
    assert (HISTORIES / DEV_SET / MANIFEST).is_file(), "no dev set: run `make histories`"
    for set_dir in sets:
        assert (set_dir / MANIFEST).is_file(), f"{set_dir} has no {MANIFEST}"
        paths = manifest(set_dir)["paths"]
        if set_dir.name == DEV_SET:
            missing = REQUIRED_PATHS.keys() - paths.keys()
            assert not missing, f"dev set lacks {sorted(missing)}: run `make histories`"
        named = {name for entry in paths.values() for name in entry["histories"]}
        on_disk = {p.name for p in set_dir.glob("*.json")} - {MANIFEST}
        assert named == on_disk, f"{set_dir.name}: manifest and files differ"
        assert named, f"{set_dir.name} is empty"
        for path, entry in paths.items():
            assert f"{path}.json" in entry["histories"], f"{set_dir.name}/{path}: no order history"
            assert entry["outcome"]["state"] in {"COMPLETED", "CANCELLED", "FAILED"}


@pytest.mark.parametrize("history", all_recorded(), ids=lambda r: r.id)
async def test_history_replays_against_the_current_code(history: Recorded) -> None:
    loaded = load(history)
    # A history that stops before its workflow closed would prove little.
    assert loaded.events[-1].event_type in _CLOSED, f"{history.id} is not a closed run"
    result = await replayer().replay_workflow(loaded, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{history.id}: {result.replay_failure!r}"


# --- the gate can fail ---------------------------------------------------------------


@workflow.defn(name="OrderWorkflow", sandboxed=False)
class ReorderedOrderWorkflow:
    """A deliberately incompatible OrderWorkflow: it waits before its first step."""

    @workflow.run
    async def run(self, order: OrderInput) -> OrderResult:
        await workflow.sleep(1)
        raise AssertionError("never reached on replay")


async def test_an_incompatible_change_is_caught() -> None:
    history = next(r for r in all_recorded() if r.file.name == "approved_and_shipped.json")
    changed = Replayer(workflows=[ReorderedOrderWorkflow], data_converter=TEST_CONVERTER)
    with pytest.raises(NondeterminismError):
        await changed.replay_workflow(load(history))


def test_histories_are_the_cli_format() -> None:
    """Bare History JSON, as ``temporal workflow show --output json`` prints it, so
    a history from a real deployment can be added as it is."""
    for history in all_recorded():
        data = json.loads(history.file.read_text())
        assert set(data) == {"events"}, history.id
        assert data["events"][0]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"


_CLOSED = {
    # temporalio.api.enums.v1.EventType values of a closed run
    2,  # WORKFLOW_EXECUTION_COMPLETED
    3,  # WORKFLOW_EXECUTION_FAILED
}
