"""The Temporal client, configured the same way in every process."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from orderflow.settings import Settings
from orderflow.tracing import temporal_interceptors


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """``runtime`` carries the SDK's metrics (workers); None is the SDK's default."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        interceptors=temporal_interceptors(settings),
        runtime=runtime,
    )
