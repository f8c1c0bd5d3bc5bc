"""What the stack launcher's users do not exercise: its environment rules and the
error when the stack dies before it is ready (the running stack itself is proven by
test_devstack, the integration tests and the fault drills)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orderflow.devstack.launcher import Ports, StackNotReady, StackProcess
from orderflow.settings import Settings


def test_environment_is_private_to_the_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://someone-else/db")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "someone-else:7233")
    monkeypatch.setenv("FLAKY", "off")
    stack = StackProcess(
        tmp_path / "data",
        tmp_path / "stack.log",
        env={"FLAKY": None, "TEMPORAL_ADDRESS": "127.0.0.1:1234", "LOG_FORMAT": "json"},
    )
    env = stack.env
    assert "DATABASE_URL" not in env and "FLAKY" not in env
    assert env["TEMPORAL_ADDRESS"] == "127.0.0.1:1234" and env["LOG_FORMAT"] == "json"
    assert env["DATA_DIR"] == str(tmp_path / "data")
    ports = stack.ports.env()
    assert {name: env[name] for name in ports} == ports
    assert len(set(ports.values())) == len(dataclasses.fields(Ports))  # all distinct
    # Each one a setting the stack really reads, so none is silently left on its default.
    assert {name.lower() for name in ports} <= set(Settings.model_fields)
    assert stack.url == f"http://127.0.0.1:{env['API_PORT']}"


def test_a_stack_that_dies_early_says_so_and_where_to_look(tmp_path: Path) -> None:
    # Settings refuse a port above 65535, so the devstack exits before starting anything.
    stack = StackProcess(tmp_path / "data", tmp_path / "stack.log", env={"API_PORT": "70000"})
    with pytest.raises(StackNotReady) as failed:
        stack.start()
    message = str(failed.value)
    assert "stack exited with code 1" in message
    assert f"see {stack.log_path}" in message
    assert "api_port" in message.lower()  # the log's tail: the reason, not just "failed"
    assert stack.proc is not None and stack.proc.returncode == 1
