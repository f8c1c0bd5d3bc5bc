"""Observability as code: Grafana dashboards and a local Prometheus (docs/observability.md)."""
