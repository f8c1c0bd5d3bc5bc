"""OpenTelemetry traces: one trace per order, from the HTTP call to the last activity.

Configured by the standard ``OTEL_*`` variables (read through ``Settings``):
``OTEL_TRACES_EXPORTER`` (``none`` by default, ``console`` or ``otlp``),
``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_EXPORTER_OTLP_PROTOCOL``
(``http/protobuf`` or ``grpc``), ``OTEL_SERVICE_NAME``. The context crosses
process boundaries inside Temporal's headers (``TracingInterceptor``), so the
API's span is the parent of the order worker's and the shipping worker's.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from temporalio.contrib.opentelemetry import TracingInterceptor

from orderflow.settings import Settings

# Probes and scrapes every few seconds would bury the spans that matter.
UNTRACED_URLS = "healthz,readyz,dependencies,metrics"


def service_name(settings: Settings, component: str) -> str:
    return settings.otel_service_name or f"orderflow-{component}"


def _exporter(settings: Settings) -> SpanExporter:
    if settings.otel_traces_exporter == "console":
        # One line per span, like the JSON log lines around it.
        return ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + "\n")
    endpoint = settings.otel_exporter_otlp_endpoint
    if settings.otel_exporter_otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    # Given explicitly, the HTTP exporter takes the endpoint as the full URL; the
    # OTEL_EXPORTER_OTLP_ENDPOINT convention is the base URL without the signal path.
    return HttpExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces" if endpoint else None)


def configure_tracing(settings: Settings, component: str) -> bool:
    """Install the process-wide tracer provider; False (and nothing done) when off."""
    if not settings.tracing_enabled:
        return False
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name(settings, component)})
    )
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    return True


def temporal_interceptors(settings: Settings) -> list[Any]:
    """Client interceptors; workers built on the client inherit them."""
    return [TracingInterceptor()] if settings.tracing_enabled else []


def instrument_fastapi(app: Any, provider: TracerProvider | None = None) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_URLS, tracer_provider=provider)


def current_trace_ids() -> dict[str, str]:
    """trace_id / span_id of the active span, for log lines; empty outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
