"""The Temporal client, configured the same way in every process."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig

from orderflow.settings import Settings


def tls_config(settings: Settings) -> TLSConfig | bool:
    """False for plain gRPC; True for TLS with the system CAs; a TLSConfig when
    a private CA or a client certificate (mTLS) is configured."""
    if not settings.temporal_tls:
        return False
    files = (
        settings.temporal_tls_ca_path,
        settings.temporal_tls_cert_path,
        settings.temporal_tls_key_path,
    )
    if not any(files):
        return True
    ca, cert, key = (path.read_bytes() if path else None for path in files)
    return TLSConfig(server_root_ca_cert=ca, client_cert=cert, client_private_key=key)


async def connect(settings: Settings) -> Client:
    api_key = settings.temporal_api_key
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=tls_config(settings),
        api_key=api_key.get_secret_value() if api_key else None,
    )
