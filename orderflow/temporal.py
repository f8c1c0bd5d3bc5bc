"""The Temporal client, configured the same way in every process."""

from __future__ import annotations

import dataclasses

from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadConverter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from orderflow.forced_failure import is_forced_failure
from orderflow.payload_codec import EncryptionCodec, Keyring
from orderflow.settings import Settings
from orderflow.tracing import temporal_interceptors


class ForcedFailuresWithoutTraces(DefaultFailureConverter):
    """The default conversion, minus the stack trace of flaky_call's forced failures.

    That trace is the same two frames every time. Local attempts report their
    failures as data (workers/attempts.py), so this matters for the attempts the
    Temporal server retries (a step handed over during an outage): each failure is
    formatted and stored in the history for every one of them. Every other error
    keeps its trace.
    """

    def to_failure(
        self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure
    ) -> None:
        if is_forced_failure(exception):
            exception = exception.with_traceback(None)
        super().to_failure(exception, payload_converter, failure)


class EncodedFailures(ForcedFailuresWithoutTraces):
    """Failure messages and stack traces moved into an encoded payload, so the codec
    encrypts them too (a message may quote an order's data)."""

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=True)


# The payload and failure conversion without encryption: what the codec encrypts.
# Processes talk to Temporal through data_converter() (connect does); this one reads
# only histories written before encryption, or by tests that run unencrypted.
DATA_CONVERTER = dataclasses.replace(
    pydantic_data_converter, failure_converter_class=ForcedFailuresWithoutTraces
)


def data_converter(keyring: Keyring) -> DataConverter:
    """The converter every process uses: pydantic JSON, then AES-256-GCM per payload.

    Also what a ``Replayer`` needs for recorded histories: a keyring holding every key
    their payloads were written under (the current key does not matter for replay).
    """
    return dataclasses.replace(
        DATA_CONVERTER,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=EncodedFailures,
    )


def tls_config(settings: Settings) -> TLSConfig | bool:
    """False for plain gRPC; True for TLS with the system CAs; a TLSConfig when
    a private CA or a client certificate (mTLS) is configured."""
    if not settings.temporal_tls:
        return False
    # The chart mounts one Secret at fixed paths; a file it lacks (no client
    # certificate: TLS without mTLS) is simply not there.
    ca, cert, key = (
        path.read_bytes() if path is not None and path.is_file() else None
        for path in (
            settings.temporal_tls_ca_path,
            settings.temporal_tls_cert_path,
            settings.temporal_tls_key_path,
        )
    )
    if ca is None and cert is None and key is None:
        return True
    return TLSConfig(server_root_ca_cert=ca, client_cert=cert, client_private_key=key)


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """``runtime`` carries the SDK's metrics (workers); None is the SDK's default."""
    api_key = settings.temporal_api_key
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings.keyring()),
        tls=tls_config(settings),
        api_key=api_key.get_secret_value() if api_key else None,
        interceptors=temporal_interceptors(settings),
        runtime=runtime,
    )
