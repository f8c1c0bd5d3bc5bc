"""Are the ports `make run` is about to listen on free?

Checked before anything starts. Without it, a second `make run` (or any other
PostgreSQL or Temporal on the default ports) made the stack's own servers fail to
bind and crash-loop, while its readiness checks passed against the *other* servers:
the banner said "Orderflow is running" and the workers and API talked to someone
else's database and Temporal.
"""

from __future__ import annotations

import errno
import socket

from orderflow.settings import Settings


def wanted(settings: Settings) -> dict[str, int]:
    """The setting (environment variable) -> port of every listener the stack opens."""
    ports = {
        "API_PORT": settings.api_port,
        "ORDER_WORKER_HTTP_PORT": settings.order_worker_http_port,
        "SHIPPING_WORKER_HTTP_PORT": settings.shipping_worker_http_port,
    }
    if settings.embedded_postgres:
        ports["EMBEDDED_POSTGRES_PORT"] = settings.embedded_postgres_port
    if settings.embedded_temporal:
        ports |= {
            "EMBEDDED_TEMPORAL_PORT": settings.embedded_temporal_port,
            "EMBEDDED_TEMPORAL_UI_PORT": settings.embedded_temporal_ui_port,
            "EMBEDDED_TEMPORAL_METRICS_PORT": settings.embedded_temporal_metrics_port,
        }
    return ports


def in_use(host: str, port: int) -> bool:
    """Someone listens on host:port (a bind to it fails with 'address in use')."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As a server binds: a port left in TIME_WAIT by a stack that just stopped is
        # free for it, and must count as free here.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def busy(settings: Settings) -> dict[str, int]:
    """The wanted ports that are taken already, by setting."""
    hosts = {"API_PORT": settings.api_host, "ORDER_WORKER_HTTP_PORT": settings.worker_http_host}
    hosts["SHIPPING_WORKER_HTTP_PORT"] = settings.worker_http_host
    return {
        name: port
        for name, port in wanted(settings).items()
        if in_use(hosts.get(name, "127.0.0.1"), port)
    }


def explain(taken: dict[str, int]) -> str:
    listed = ", ".join(f"{port} ({name})" for name, port in taken.items())
    return (
        f"ports already in use: {listed}. Another `make run` (or another PostgreSQL or "
        "Temporal) is probably running: stop it, or give this stack other ports with the "
        "settings named, e.g. `API_PORT=8010 make run`."
    )
