"""Customer data on a real stack (issue 31): an order's address and payment id are
encrypted in Temporal's history, decoded only through the codec server with its
token, and appear in no log line, span or metric of the run.

A stack of its own (tracing on, console exporter: the spans land in its log) with a
key of its own, and the codec server as its own process with the same key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderflow.devstack.launcher import StackProcess, free_port
from orderflow.payload_codec import Keyring
from tests.conftest import API_TOKEN, TEMPORAL_BIN

pytestmark = pytest.mark.integration

KEYS = f"it-enc-1:{Keyring.new_key()}"
CODEC_TOKEN = f"codec-{uuid.uuid4().hex}"
UI_ORIGIN = "http://127.0.0.1:8233"


@dataclass(frozen=True)
class Run:
    stack: StackProcess
    order_id: str
    secrets: tuple[str, ...]  # the payment id, the first address's and the new one's line1
    codec_url: str
    temporal_address: str


@pytest.fixture(scope="module")
def codec_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PAYLOAD_KEYS": KEYS,
        "CODEC_SERVER_TOKEN": CODEC_TOKEN,
        "CODEC_SERVER_PORT": str(port),
        "CODEC_SERVER_CORS_ORIGIN": UI_ORIGIN,
    }
    log = tmp_path_factory.mktemp("codec") / "codec.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orderflow.codec_server"], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"codec server did not start: {log.read_text()}")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def run(
    postgres_dsn: str,
    temporal_address: str,
    codec_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("encrypted-stack")
    stack = StackProcess(
        root / "data",
        root / "stack.log",
        env={
            "DATABASE_URL": postgres_dsn,
            "TEMPORAL_ADDRESS": temporal_address,
            "API_TOKEN": API_TOKEN,
            "PAYLOAD_KEYS": KEYS,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "OTEL_TRACES_EXPORTER": "console",
            # Queues of its own: the session's stack (another key) polls the default ones
            # on this Temporal, and its workers would take some of these orders' tasks.
            "ORDER_TASK_QUEUE": f"orders-enc-{uuid.uuid4().hex[:8]}",
            "SHIPPING_TASK_QUEUE": f"shipping-enc-{uuid.uuid4().hex[:8]}",
        },
    )
    stack.start(within=90)
    tag = uuid.uuid4().hex[:10]
    order_id = f"enc-{tag}"
    payment_id = f"pay-{tag}-4111"
    first = f"{tag} Privacy Lane 7"
    moved = f"{tag} Elsewhere Street 9"
    address = {"line1": first, "city": "Berlin", "postal_code": "10115", "country": "DE"}
    try:
        with httpx.Client(
            base_url=stack.url, timeout=20, headers={"Authorization": f"Bearer {API_TOKEN}"}
        ) as http:
            started = http.post(
                f"/orders/{order_id}/start", json={"payment_id": payment_id, "address": address}
            )
            assert started.status_code == 202, started.text
            _wait(http, order_id, {"AWAITING_APPROVAL"})
            assert http.get(f"/orders/{order_id}/status?live=true").status_code == 200
            changed = http.post(
                f"/orders/{order_id}/signals/update-address",
                json={"address": {**address, "line1": moved}},
            )
            assert changed.status_code == 202, changed.text
            assert http.post(f"/orders/{order_id}/signals/approve").status_code == 202
            final = _wait(http, order_id, {"COMPLETED", "CANCELLED", "FAILED"})
            assert final["state"] == "COMPLETED", final
            assert final["address"]["line1"] == moved  # the API still answers in clear
            workers = (stack.ports.order_worker, stack.ports.shipping_worker)
            for url in (stack.url, *(f"http://127.0.0.1:{port}" for port in workers)):
                metrics = http.get(f"{url}/metrics").text
                assert not [s for s in (payment_id, first, moved, tag) if s in metrics]
        yield Run(stack, order_id, (payment_id, first, moved), codec_url, temporal_address)
    finally:
        stack.stop()


def _wait(http: httpx.Client, order_id: str, states: set[str]) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for _ in range(600):
        last = http.get(f"/orders/{order_id}/status").json()
        if last.get("state") in states:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{order_id} never reached {states}: {last}")


def _show(run: Run, workflow_id: str, *codec: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(str(TEMPORAL_BIN), "workflow", "show", "--address", run.temporal_address),
            *("-w", workflow_id, "--output", "json", *codec),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _histories(run: Run, *codec: str) -> str:
    out = []
    for workflow_id in (f"order-{run.order_id}", f"shipping-{run.order_id}-run1"):
        shown = _show(run, workflow_id, *codec)
        assert shown.returncode == 0, shown.stderr
        assert len(json.loads(shown.stdout)["events"]) > 5
        out.append(shown.stdout)
    return "\n".join(out)


def test_raw_history_holds_no_address_and_no_payment_id(run: Run) -> None:
    raw = _histories(run)
    assert [s for s in run.secrets if s in raw] == []
    # Protobuf JSON keeps payload data base64: look there too.
    decoded_blobs = _base64_strings(raw)
    assert [s for s in run.secrets if s in decoded_blobs] == []
    assert "binary/encrypted" in decoded_blobs  # every payload says how it is encoded
    assert "it-enc-1" in decoded_blobs  # and under which key


def test_codec_endpoint_with_the_token_decodes_them(run: Run) -> None:
    decoded = _histories(
        run, "--codec-endpoint", run.codec_url, "--codec-auth", f"Bearer {CODEC_TOKEN}"
    )
    text = decoded + _base64_strings(decoded)
    assert [s for s in run.secrets if s not in text] == []


def test_codec_endpoint_without_the_token_is_refused(run: Run) -> None:
    # The CLI retries the codec's 401 until its deadline, then gives up: nothing shown.
    shown = _show(run, f"order-{run.order_id}", "--codec-endpoint", run.codec_url)
    assert shown.returncode != 0
    assert [s for s in run.secrets if s in shown.stdout + _base64_strings(shown.stdout)] == []
    # What it was answered: 401, with or without a body, for either endpoint.
    body = {"payloads": [{"metadata": {"encoding": "YmluYXJ5L2VuY3J5cHRlZA=="}, "data": ""}]}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": CODEC_TOKEN}):
        for path in ("/decode", "/encode"):
            resp = httpx.post(f"{run.codec_url}{path}", json=body, headers=headers)
            assert resp.status_code == 401, (path, headers, resp.text)


def test_codec_cors_admits_only_the_ui_origin(run: Run) -> None:
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(
            f"{run.codec_url}/decode",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
            },
        )

    assert preflight(UI_ORIGIN).headers.get("access-control-allow-origin") == UI_ORIGIN
    other = preflight("https://evil.example")
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


def test_no_address_or_payment_id_in_logs_or_spans(run: Run) -> None:
    text = Path(run.stack.log_path).read_text(errors="replace")
    lines = [line for line in text.splitlines() if run.order_id in line]
    # The run is really in there: its log lines (the charge among them) and its spans.
    assert any('"payment charged"' in line for line in lines), "no charge logged: grep is void"
    assert any('"RunWorkflow:OrderWorkflow"' in line for line in lines), "no spans in the log"
    assert any('"RunActivity:carrier_dispatched"' in line for line in text.splitlines())
    leaks = [line for line in text.splitlines() if any(s in line for s in run.secrets)]
    assert leaks == []


def _base64_strings(text: str) -> str:
    """Every base64 string value in a protobuf JSON dump, decoded where it decodes."""
    import base64
    import re

    out = []
    for candidate in re.findall(r'"([A-Za-z0-9+/=]{8,})"', text):
        try:
            out.append(base64.b64decode(candidate, validate=True).decode("utf-8", "replace"))
        except ValueError:
            continue
    return "\n".join(out)
