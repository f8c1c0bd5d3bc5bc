"""Serve the HTTP functions with uvicorn: ``python -m functions``.

SIGTERM stops accepting connections and lets in-flight requests finish.
"""

from __future__ import annotations

import uvicorn

from functions.routes.orders import WAIT_MAX_SECONDS
from orderflow.log import configure_logging
from orderflow.settings import get_settings
from orderflow.tracing import configure_tracing

# Most requests are one Temporal or database call, but a status long poll
# (`?wait=`) is held for up to WAIT_MAX_SECONDS: the drain must outlast it, or a poll
# in flight at SIGTERM is cut and its client gets a 500 (tests/functions/test_drain.py).
# The chart's terminationGracePeriodSeconds for the API is longer still.
GRACEFUL_SHUTDOWN_SECONDS = int(WAIT_MAX_SECONDS) + 5


def main() -> None:
    settings = get_settings()
    configure_logging("api", settings.log_level, settings.log_format)
    configure_tracing(settings, "api")
    uvicorn.run(
        "functions.main:app",
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


if __name__ == "__main__":
    main()
