"""`make run` refuses to start on ports someone else already listens on, and says which."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderflow.devstack import ports
from orderflow.devstack.launcher import StackNotReady, StackProcess, free_port
from orderflow.settings import Settings


@pytest.fixture
def listener() -> Iterator[int]:
    """A port somebody listens on, as another `make run`'s API would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_listened_port_is_in_use_and_a_free_one_is_not(listener: int) -> None:
    assert ports.problem("127.0.0.1", listener) == ports.IN_USE
    assert ports.problem("127.0.0.1", free_port()) is None


def test_only_the_embedded_services_ports_are_wanted() -> None:
    embedded = ports.wanted(Settings())
    assert {"EMBEDDED_POSTGRES_PORT", "EMBEDDED_TEMPORAL_PORT", "API_PORT"} <= set(embedded)

    external = ports.wanted(
        Settings(database_url="postgresql://db/x", temporal_address="temporal:7233")
    )
    assert not any(name.startswith("EMBEDDED_") for name in external)
    assert {"API_PORT", "ORDER_WORKER_HTTP_PORT", "SHIPPING_WORKER_HTTP_PORT"} == set(external)


def test_busy_names_the_setting_of_each_taken_port(listener: int) -> None:
    settings = Settings(api_port=listener, order_worker_http_port=free_port())
    taken = ports.busy(settings)
    assert taken.get("API_PORT") == (listener, "in use")
    assert "ORDER_WORKER_HTTP_PORT" not in taken
    assert f"{listener} (API_PORT): in use" in ports.explain(taken)


def test_make_run_exits_at_once_when_its_api_port_is_taken(tmp_path: Path, listener: int) -> None:
    stack = StackProcess(tmp_path / "data", tmp_path / "stack.log", env={"API_PORT": str(listener)})
    with pytest.raises(StackNotReady, match="exited with code 1"):
        stack.start(within=60)
    log = stack.log_path.read_text()
    assert f"{listener} (API_PORT): in use" in log
    assert "Orderflow is running" not in log
    # Nothing was started: not even the embedded PostgreSQL, which comes first.
    assert not (tmp_path / "data" / "postgres").exists()
