"""`make observe`'s scrape targets (observability/prometheus.py)."""

from __future__ import annotations

from observability.prometheus import targets
from orderflow.settings import Settings


def test_the_embedded_temporal_server_is_scraped_on_its_metrics_port() -> None:
    jobs = targets(Settings(embedded_temporal_metrics_port=18234))
    assert jobs["temporal"] == "127.0.0.1:18234"
    assert {"orderflow-functions", "orderflow-order-worker", "orderflow-shipping-worker"} <= set(
        jobs
    )


def test_someone_elses_temporal_is_not_scraped() -> None:
    assert "temporal" not in targets(Settings(temporal_address="temporal.example:7233"))
