"""The load report's arithmetic."""

from __future__ import annotations

from loadtest.orders import OrderRecord, percentile, summarize


def record(state: str | None, latency: float | None, error: str | None = None) -> OrderRecord:
    r = OrderRecord(order_id="x", kind="approve", sent_at=0.0, error=error)
    if state:
        r.finish(
            {
                "state": state,
                "started_at": "2026-01-01T00:00:00+00:00",
                "finished_at": f"2026-01-01T00:00:{latency:06.3f}+00:00",
            }
        )
    return r


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([], 50) is None


def test_summary_counts_states_slo_and_unfinished() -> None:
    records = [
        record("COMPLETED", 2.0),
        record("COMPLETED", 16.5),
        record("CANCELLED", 1.0),
        record(None, None),
        record(None, None, error="start: 503"),
    ]
    s = summarize(records, duration=10)
    assert s.by_state == {"CANCELLED": 1, "COMPLETED": 2, "ERROR": 1, "NOT_FINISHED": 1}
    assert s.not_finished == 2 and s.errors == 1
    assert s.latency["p50"] == 2.0 and s.latency["max"] == 16.5
    assert s.completed_within_slo == 1 and s.share_within_slo == 0.5
    assert s.started_per_second == 0.5
