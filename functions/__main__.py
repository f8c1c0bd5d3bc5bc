"""Serve the HTTP functions with uvicorn: ``python -m functions``.

SIGTERM stops accepting connections and lets in-flight requests finish.
"""

from __future__ import annotations

import uvicorn

from orderflow.log import configure_logging
from orderflow.settings import get_settings
from orderflow.tracing import configure_tracing

# In-flight requests are short (one Temporal or database call); this is ample.
GRACEFUL_SHUTDOWN_SECONDS = 10


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
