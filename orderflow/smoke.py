"""One order through the running API, start to finish: ``python -m orderflow.smoke``.

The Helm chart's ``helm test`` pod runs this against the functions Service; it
works against any deployment (API_BASE_URL, and API_TOKEN when the API wants
one). Exit code 0 means an order was started, approved and COMPLETED.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any

import httpx

from orderflow.log import configure_logging, get_logger
from orderflow.settings import Settings, get_settings

log = get_logger(__name__)

ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
TERMINAL = {"COMPLETED", "CANCELLED", "FAILED"}
# Orders complete in seconds with a prompt approval; this bounds a stuck deployment.
DEADLINE_SECONDS = 90.0
POLL_SECONDS = 0.5


def _client(settings: Settings) -> httpx.Client:
    headers = {}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    return httpx.Client(base_url=settings.api_base_url, headers=headers, timeout=15)


def run(settings: Settings, deadline_seconds: float = DEADLINE_SECONDS) -> dict[str, Any]:
    """Return the final status of one smoke order; raise if it did not complete."""
    order_id = f"smoke-{uuid.uuid4().hex[:12]}"
    with _client(settings) as http:
        started = http.post(
            f"/orders/{order_id}/start",
            json={"payment_id": f"pay-{order_id}", "address": ADDRESS},
        )
        started.raise_for_status()
        http.post(f"/orders/{order_id}/signals/approve").raise_for_status()
        deadline = time.monotonic() + deadline_seconds
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            resp = http.get(f"/orders/{order_id}/status")
            if resp.status_code == 200:
                status = resp.json()
                if status["state"] in TERMINAL:
                    break
            time.sleep(POLL_SECONDS)
    if status.get("state") != "COMPLETED":
        raise RuntimeError(f"smoke order {order_id} did not complete: {status}")
    return status


def main() -> int:
    settings = get_settings()
    configure_logging("smoke", settings.log_level, settings.log_format)
    try:
        status = run(settings)
    except (httpx.HTTPError, RuntimeError) as err:
        log.error("smoke order failed", error=str(err), api=settings.api_base_url)
        return 1
    log.info("smoke order completed", order_id=status["order_id"], api=settings.api_base_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
