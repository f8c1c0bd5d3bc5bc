"""The worker's metrics: the Temporal SDK's and ours, served on one /metrics.

The SDK exports its metrics (task slots, schedule-to-start and execution
latencies, workflow end-to-end latency, and everything workflows record through
``workflow.metric_meter()``, see workers/metrics.py) from a Prometheus listener
of its own, in Rust. That listener is bound to loopback on
TEMPORAL_SDK_METRICS_PORT (a free port by default), and the worker's HTTP
server (workers/health.py) appends what it serves to the process's own
metrics, so Prometheus scrapes one port per worker, next to /healthz and
/readyz. A proxy rather than the SDK's MetricBuffer: the SDK keeps doing the
aggregation, bucketing and naming it is built for, and we only pass text on.
"""

from __future__ import annotations

import socket

import httpx
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from orderflow.metrics import exposition
from orderflow.settings import Settings
from workers.metrics import BUCKETS

SDK_SCRAPE_TIMEOUT_SECONDS = 2.0


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class WorkerMetrics:
    def __init__(self, settings: Settings) -> None:
        self.sdk_port = settings.temporal_sdk_metrics_port or _free_loopback_port()
        self.runtime = Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(
                    bind_address=f"127.0.0.1:{self.sdk_port}",
                    # Seconds, like every other duration on the dashboards.
                    durations_as_seconds=True,
                    histogram_bucket_overrides={k: list(v) for k, v in BUCKETS.items()},
                )
            )
        )
        self._http = httpx.AsyncClient(timeout=SDK_SCRAPE_TIMEOUT_SECONDS)

    async def sdk_text(self) -> bytes:
        response = await self._http.get(f"http://127.0.0.1:{self.sdk_port}/metrics")
        response.raise_for_status()
        return response.content

    async def render(self) -> bytes:
        """Our metrics, then the SDK's (distinct names: no family appears twice)."""
        own = exposition()
        try:
            sdk = await self.sdk_text()
        except httpx.HTTPError:
            # Our own metrics are still worth serving; the scrape shows the gap as
            # missing temporal_* series, and the worker logs nothing per scrape.
            sdk = b""
        return own + (b"\n" if own and not own.endswith(b"\n") else b"") + sdk

    async def close(self) -> None:
        await self._http.aclose()
