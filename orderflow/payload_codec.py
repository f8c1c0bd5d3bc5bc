"""Every Temporal payload encrypted with AES-256-GCM before it leaves the process.

Workflow inputs, update and signal arguments, query results, local-activity
markers, the child's input and the failures' messages (``encode_common_attributes``)
reach the Temporal server as ``binary/encrypted`` payloads: the server, its UI and
its CLI see the key id and ciphertext only.

Keys come from ``PAYLOAD_KEYS`` (``id:base64,id:base64``, 32 bytes each) and the
current one from ``PAYLOAD_KEY_ID`` (default: the first listed). Encryption uses
the current key; decryption accepts every listed key, found by the key id each
payload carries in its metadata. Rotation: add the new key everywhere, then make
it current, and drop the old one only when no history that needs it is kept.

No compression before encryption: measured on this service's payloads it saved
little and cost more CPU than the encryption itself (docs/decisions/0010-*).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
# The same names as Temporal's encryption samples, so their tools recognise them.
NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Binds a ciphertext to its format and key id: a payload relabelled with another
# key id, or a future format's, fails authentication instead of decrypting.
_AAD_PREFIX = b"orderflow.payload.v1:"


class KeyringError(ValueError):
    """PAYLOAD_KEYS or PAYLOAD_KEY_ID is malformed or names no key."""


class UnknownKey(RuntimeError):
    """A payload is encrypted with a key this process was not given."""


@dataclass(frozen=True)
class Keyring:
    keys: Mapping[str, bytes]
    current: str

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyringError("no payload keys")
        for key_id, key in self.keys.items():
            if not _KEY_ID.match(key_id):
                raise KeyringError(f"key id {key_id!r}: 1-64 of A-Z a-z 0-9 . _ -")
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key {key_id!r}: {len(key)} bytes, AES-256 needs 32")
        if self.current not in self.keys:
            raise KeyringError(f"the current key {self.current!r} is not among PAYLOAD_KEYS")

    @classmethod
    def parse(cls, spec: str, current: str | None = None) -> Keyring:
        """``id:base64key[,id:base64key...]``; the current key is ``current`` or the first."""
        keys: dict[str, bytes] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key_id, sep, encoded = item.partition(":")
            if not sep:
                raise KeyringError("PAYLOAD_KEYS: each entry is id:base64key")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except binascii.Error as e:
                raise KeyringError(f"key {key_id.strip()!r}: not base64") from e
            if key_id.strip() in keys:
                raise KeyringError(f"key id {key_id.strip()!r} listed twice")
            keys[key_id.strip()] = key
        if not keys:
            raise KeyringError("PAYLOAD_KEYS lists no key")
        return cls(keys, current or next(iter(keys)))

    @staticmethod
    def new_key() -> str:
        """A fresh random key, base64, as PAYLOAD_KEYS takes it."""
        return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()

    def with_current(self, key_id: str) -> Keyring:
        return Keyring(self.keys, key_id)


def _aad(key_id: str) -> bytes:
    return _AAD_PREFIX + key_id.encode()


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM per payload: a random 96-bit nonce, the key id in the metadata.

    Payloads that are not ``binary/encrypted`` pass through decode unchanged: the
    histories written before encryption was switched on still replay and decode.
    """

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}
        self._current = keyring.current.encode()
        self._current_cipher = self._ciphers[keyring.current]
        self._current_aad = _aad(keyring.current)

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._current_cipher.encrypt(nonce, payload.SerializeToString(), self._current_aad)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: self._current},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKey(
                f"payload encrypted with key {key_id!r}, which is not in PAYLOAD_KEYS "
                f"(known: {', '.join(sorted(self._ciphers))})"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _aad(key_id))
        except InvalidTag as e:
            raise UnknownKey(f"payload under key {key_id!r} failed authentication") from e
        return Payload.FromString(plain)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]
