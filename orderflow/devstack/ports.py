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


def wanted(settings: Settings) -> dict[str, tuple[str, int]]:
    """The setting (environment variable) -> (host, port) of every listener the stack opens."""
    worker = settings.worker_http_host
    ports = {
        "API_PORT": (settings.api_host, settings.api_port),
        "ORDER_WORKER_HTTP_PORT": (worker, settings.order_worker_http_port),
        "SHIPPING_WORKER_HTTP_PORT": (worker, settings.shipping_worker_http_port),
    }
    # The embedded servers listen on loopback (orderflow/devstack/postgres.py, temporal.py).
    if settings.embedded_postgres:
        ports["EMBEDDED_POSTGRES_PORT"] = ("127.0.0.1", settings.embedded_postgres_port)
    if settings.embedded_temporal:
        ports |= {
            "EMBEDDED_TEMPORAL_PORT": ("127.0.0.1", settings.embedded_temporal_port),
            "EMBEDDED_TEMPORAL_UI_PORT": ("127.0.0.1", settings.embedded_temporal_ui_port),
            "EMBEDDED_TEMPORAL_METRICS_PORT": (
                "127.0.0.1",
                settings.embedded_temporal_metrics_port,
            ),
        }
    return ports


IN_USE = "in use"


def problem(host: str, port: int) -> str | None:
    """Why the stack could not listen on host:port, or None if it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As a server binds: a port left in TIME_WAIT by a stack that just stopped is
        # free for it, and must count as free here.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            return IN_USE if err.errno == errno.EADDRINUSE else (err.strerror or str(err))
    return None


def busy(settings: Settings) -> dict[str, tuple[int, str]]:
    """The wanted ports the stack cannot listen on, by setting: (port, why)."""
    found = {}
    for name, (host, port) in wanted(settings).items():
        why = problem(host, port)
        if why is not None:
            found[name] = (port, why)
    return found


def explain(taken: dict[str, tuple[int, str]]) -> str:
    listed = ", ".join(f"{port} ({name}): {why}" for name, (port, why) in taken.items())
    return (
        f"cannot listen on {listed}. Another `make run` (or another PostgreSQL or "
        "Temporal) is probably running: stop it, or give this stack other ports with the "
        "settings named, e.g. `API_PORT=8010 make run`."
    )
