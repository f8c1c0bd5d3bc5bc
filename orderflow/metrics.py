"""What every process exports besides its own metrics: who it is.

``orderflow_build_info{component, version} 1`` lets dashboards count replicas
per component and alerts notice a component that has disappeared, whatever
the scrape job is called in a given Prometheus.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

# `*_created` series double the output and no dashboard or alert reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

BUILD_INFO = Gauge(
    "orderflow_build_info", "One per running process, by component.", ["component", "version"]
)


def _version() -> str:
    try:
        return version("orderflow")
    except PackageNotFoundError:
        return "unknown"


def announce(component: str) -> None:
    BUILD_INFO.labels(component=component, version=_version()).set(1)


def exposition(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The process's metrics in Prometheus text format."""
    return generate_latest(registry)
