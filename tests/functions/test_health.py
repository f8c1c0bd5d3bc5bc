"""The API's probes while PostgreSQL and Temporal are both unreachable
(tests/functions/conftest.py): the pod stays in its Service, since it still answers
(with 503s that say so), and the dependency endpoint and gauge report the outage."""

from __future__ import annotations

from fastapi.testclient import TestClient

from orderflow.settings import Settings


def test_liveness_and_readiness_ignore_the_dependencies(
    offline_client: tuple[TestClient, Settings],
) -> None:
    http, _ = offline_client
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "reason": None})


def test_dependencies_name_each_one_down(offline_client: tuple[TestClient, Settings]) -> None:
    http, _ = offline_client
    resp = http.get("/dependencies")
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["status"] == "degraded"
    assert set(body["dependencies"]) == {"temporal", "database"}
    assert all(state.startswith("unreachable (") for state in body["dependencies"].values())


def test_the_gauge_says_down_at_the_scrape(offline_client: tuple[TestClient, Settings]) -> None:
    http, _ = offline_client
    scraped = http.get("/metrics")
    assert scraped.status_code == 200
    for dependency in ("temporal", "database"):
        assert f'orderflow_dependency_up{{dependency="{dependency}"}} 0.0' in scraped.text


def test_the_answers_carry_the_outage(offline_client: tuple[TestClient, Settings]) -> None:
    """Why the pod stays ready: a client reaching it learns to retry, instead of
    finding no endpoint behind the Service."""
    http, _ = offline_client
    for path in ("/orders/o-1/events", "/orders/o-1/status"):
        resp = http.get(path)
        assert (resp.status_code, resp.headers.get("retry-after")) == (503, "1"), resp.text
    assert http.get("/readyz").status_code == 200
