"""One trace per order: API handler -> order workflow -> its activities -> the shipping
child on the shipping worker -> its activities, and the database calls inside.

The API app and both workers run in this process (each with the same wiring the
real processes use: orderflow.temporal.connect adds the TracingInterceptor,
create_app + instrument_fastapi, asyncpg instrumentation) against the real
Temporal and PostgreSQL; spans go to an in-memory exporter.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpExporter,
)
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from functions.deps import Resources, current_resources, current_settings
from functions.main import create_app
from orderflow import tracing
from orderflow.log import _add_trace_ids
from orderflow.settings import Settings
from orderflow.temporal import connect
from tests.workers.harness import ADDRESS, running_workers

TERMINAL = {"COMPLETED", "CANCELLED", "FAILED"}


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The global provider can be set once per process; nothing else in the suite
    # traces (tracing is off unless OTEL_TRACES_EXPORTER says otherwise).
    trace.set_tracer_provider(provider)
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    instrumentor.instrument(tracer_provider=provider)
    yield provider, exporter
    instrumentor.uninstrument()


async def test_one_trace_spans_api_order_worker_and_shipping_worker(
    provider: tuple[TracerProvider, InMemorySpanExporter],
    temporal_address: str,
    postgres_dsn: str,
    db: asyncpg.Pool,
) -> None:
    tracer_provider, exporter = provider
    queues = (f"orders-{uuid.uuid4()}", f"shipping-{uuid.uuid4()}")
    settings = Settings(
        temporal_address=temporal_address,
        database_url=postgres_dsn,
        order_task_queue=queues[0],
        shipping_task_queue=queues[1],
        otel_traces_exporter="console",  # on; the exporter is this test's
    )
    assert tracing.temporal_interceptors(settings), "tracing on means the interceptor is set"
    app = create_app()
    tracing.instrument_fastapi(app, tracer_provider)
    resources = Resources(settings)
    app.dependency_overrides[current_resources] = lambda: resources
    app.dependency_overrides[current_settings] = lambda: settings
    worker_client = await connect(settings)
    order_id = f"tr-{uuid.uuid4().hex[:10]}"

    async with (
        running_workers(worker_client, db, queues=queues),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=20
        ) as http,
    ):
        started = await http.post(
            f"/orders/{order_id}/start",
            json={"payment_id": f"pay-{order_id}", "address": ADDRESS.model_dump()},
        )
        assert started.status_code == 202, started.text
        assert (await http.post(f"/orders/{order_id}/signals/approve")).status_code == 202
        state = ""
        for _ in range(300):
            state = (await http.get(f"/orders/{order_id}/status")).json()["state"]
            if state in TERMINAL:
                break
            await asyncio.sleep(0.1)
        assert state == "COMPLETED"
    await resources.close()
    tracer_provider.force_flush()

    spans = exporter.get_finished_spans()
    start = next(s for s in spans if s.name == "POST /orders/{order_id}/start")
    assert start.context is not None
    trace_id = start.context.trace_id
    in_trace = {s.name for s in spans if s.context and s.context.trace_id == trace_id}
    expected = {
        "POST /orders/{order_id}/start",  # API
        "StartWorkflow:OrderWorkflow",  # API's Temporal client
        "RunWorkflow:OrderWorkflow",  # order worker
        "RunActivity:order_received",
        "RunActivity:payment_charged",
        "StartChildWorkflow:ShippingWorkflow",
        "RunWorkflow:ShippingWorkflow",  # shipping worker
        "RunActivity:package_prepared",
        "RunActivity:carrier_dispatched",
    }
    assert expected <= in_trace, f"missing from the order's trace: {expected - in_trace}"
    db_spans = [
        s
        for s in spans
        if s.context
        and s.context.trace_id == trace_id
        and (s.attributes or {}).get("db.system") == "postgresql"
    ]
    assert db_spans, "the activities' database calls belong to the order's trace"


def test_log_lines_carry_the_trace_id() -> None:
    tracer = TracerProvider().get_tracer(__name__)
    assert _add_trace_ids(None, "info", {}) == {}
    with tracer.start_as_current_span("work") as span:
        event = dict(_add_trace_ids(None, "info", {"event": "x"}))
    assert event["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert event["span_id"] == format(span.get_span_context().span_id, "016x")


def test_exporter_follows_the_otel_variables() -> None:
    grpc = tracing._exporter(
        Settings(
            otel_traces_exporter="otlp",
            otel_exporter_otlp_protocol="grpc",
            otel_exporter_otlp_endpoint="http://127.0.0.1:4317",
        )
    )
    assert isinstance(grpc, GrpcExporter)
    http = tracing._exporter(
        Settings(otel_traces_exporter="otlp", otel_exporter_otlp_endpoint="http://127.0.0.1:4318/")
    )
    assert isinstance(http, HttpExporter)
    assert http._endpoint == "http://127.0.0.1:4318/v1/traces"
    assert tracing.service_name(Settings(), "order-worker") == "orderflow-order-worker"
    assert tracing.service_name(Settings(otel_service_name="x"), "api") == "x"
    assert not tracing.temporal_interceptors(Settings())
