"""The payload codec, its keyring, the development key and the codec server's rules,
without a server (the end-to-end checks are in tests/integration/test_payload_encryption.py)."""

from __future__ import annotations

import asyncio
import base64
import stat
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload

from orderflow.codec_server import create_app
from orderflow.devstack.dev_key import development_keys
from orderflow.payload_codec import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    Keyring,
    KeyringError,
    UnknownKey,
)
from orderflow.settings import Settings

A, B = Keyring.new_key(), Keyring.new_key()
T = TypeVar("T")
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"line1": "1 Main St"}')


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_round_trip_under_the_current_key_with_its_id_in_the_metadata() -> None:
    codec = EncryptionCodec(Keyring.parse(f"a:{A},b:{B}", "b"))
    (sealed,) = run(codec.encode([PLAIN]))
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == b"b"
    assert b"Main St" not in sealed.data
    assert run(codec.decode([sealed])) == [PLAIN]
    # A fresh nonce each time: the same payload never encrypts to the same bytes.
    assert run(codec.encode([PLAIN]))[0].data != sealed.data


def test_every_listed_key_decrypts_only_listed_keys_do() -> None:
    (under_a,) = run(EncryptionCodec(Keyring.parse(f"a:{A}")).encode([PLAIN]))
    assert run(EncryptionCodec(Keyring.parse(f"b:{B},a:{A}")).decode([under_a])) == [PLAIN]
    with pytest.raises(UnknownKey, match="'a'"):
        run(EncryptionCodec(Keyring.parse(f"b:{B}")).decode([under_a]))


def test_tampered_or_relabelled_payloads_fail_authentication() -> None:
    codec = EncryptionCodec(Keyring.parse(f"a:{A},b:{A}", "a"))  # same bytes, two ids
    (sealed,) = run(codec.encode([PLAIN]))
    flipped = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + b"\0")
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID_METADATA: b"b"}, data=sealed.data)
    for forged in (flipped, relabelled):
        with pytest.raises(UnknownKey, match="authentication"):
            run(codec.decode([forged]))


def test_clear_payloads_pass_through_decode() -> None:
    """Histories written before encryption was switched on still decode and replay."""
    assert run(EncryptionCodec(Keyring.parse(f"a:{A}")).decode([PLAIN])) == [PLAIN]


@pytest.mark.parametrize(
    ("spec", "current", "problem"),
    [
        ("", None, "no key"),
        (f"a={A}", None, "id:base64key"),
        ("a:not-base64!", None, "not base64"),
        (f"a:{base64.b64encode(b'short').decode()}", None, "32"),
        (f"a:{A},a:{B}", None, "twice"),
        (f"a b:{A}", None, "key id"),
        (f"a:{A}", "b", "not among"),
    ],
)
def test_malformed_keyrings_are_refused(spec: str, current: str | None, problem: str) -> None:
    with pytest.raises(KeyringError, match=problem):
        Keyring.parse(spec, current)


def test_settings_without_keys_refuse_to_connect() -> None:
    with pytest.raises(KeyringError, match="PAYLOAD_KEYS is not set"):
        Settings(payload_keys=None).keyring()
    assert Settings(payload_keys=SecretStr(f"a:{A},b:{B}")).keyring().current == "a"
    assert (
        Settings(payload_keys=SecretStr(f"a:{A},b:{B}"), payload_key_id="b").keyring().current
        == "b"
    )


def test_development_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    spec, path = development_keys(tmp_path / "data")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring.parse(spec).current == "dev"
    assert development_keys(tmp_path / "data") == (spec, path)  # a restart keeps it


def _codec_client(token: str | None = "tok") -> TestClient:
    settings = Settings(
        payload_keys=SecretStr(f"a:{A}"),
        codec_server_token=SecretStr(token) if token else None,
        codec_server_cors_origin="http://ui.example:8233",
    )
    return TestClient(create_app(settings))


def test_codec_server_round_trip_and_its_refusals() -> None:
    client = _codec_client()
    auth = {"Authorization": "Bearer tok"}
    body = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "e30="}]}
    encoded = client.post("/encode", json=body, headers=auth)
    assert encoded.status_code == 200
    sealed = encoded.json()["payloads"][0]
    assert base64.b64decode(sealed["metadata"]["encoding"]) == ENCODING
    decoded = client.post("/decode", json=encoded.json(), headers=auth)
    assert decoded.json() == body
    assert client.post("/decode", json=body).status_code == 401
    other_namespace = {**auth, "X-Namespace": "someone-else"}
    assert client.post("/decode", json=body, headers=other_namespace).status_code == 403
    assert client.post("/decode", content=b"not json", headers=auth).status_code == 400
    foreign = EncryptionCodec(Keyring.parse(f"z:{B}")).encrypt(PLAIN)
    unknown = {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in foreign.metadata.items()},
                "data": base64.b64encode(foreign.data).decode(),
            }
        ]
    }
    refused = client.post("/decode", json=unknown, headers=auth)
    assert refused.status_code == 422 and "'z'" in refused.text


def test_codec_server_never_runs_without_a_token() -> None:
    with pytest.raises(ValueError, match="CODEC_SERVER_TOKEN"):
        _codec_client(token=None)
