"""Secrets never reach the logs: URL passwords, bearer tokens and secret-named
fields are masked on every line, whichever logger wrote it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from orderflow.log import configure_logging, get_logger, redact

DSN = "postgresql://orderflow:pa55-w0rd@db.internal:5432/orderflow"


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    """What configure_logging's handler writes, in memory."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("test", "INFO", "json")
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)


def test_structlog_fields_and_messages_are_masked(
    out: io.StringIO,
) -> None:
    log = get_logger("t")
    log.info(f"connecting to {DSN}", url=DSN, api_token="tok-123", nested={"password": "x1"})
    log.info("request", headers={"Authorization": "Bearer tok-456"}, raw="Bearer tok-789")
    text = out.getvalue()
    for secret in ("pa55-w0rd", "tok-123", "x1", "tok-456", "tok-789"):
        assert secret not in text
    first = json.loads(text.splitlines()[0])
    assert first["url"] == "postgresql://orderflow:***@db.internal:5432/orderflow"
    assert first["api_token"] == "***"


def test_stdlib_records_and_tracebacks_are_masked(
    out: io.StringIO,
) -> None:
    try:
        raise ConnectionError(f"cannot connect to {DSN}")
    except ConnectionError:
        logging.getLogger("asyncpg.pool").exception("pool failed for %s", DSN)
    text = out.getvalue()
    assert "pa55-w0rd" not in text
    assert "ConnectionError" in text  # the traceback is still there, only masked


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "order o-1 at http://127.0.0.1:8000/orders?x=1 took 3 attempts"
    assert redact(text) == text
    assert (
        redact("postgresql://postgres@127.0.0.1:5432/db")
        == "postgresql://postgres@127.0.0.1:5432/db"
    )
