"""The load report's arithmetic: the client's clock first, the workflow's beside it."""

from __future__ import annotations

from loadtest.orders import OrderRecord, percentile, summarize


def record(
    state: str | None,
    latency: float | None,
    error: str | None = None,
    *,
    client: float | None = None,
    sent_at: float = 100.0,
    due_at: float | None = None,
) -> OrderRecord:
    r = OrderRecord(order_id="x", kind="approve", sent_at=sent_at, due_at=due_at, error=error)
    if state and latency is not None:
        r.finish(
            {
                "state": state,
                "started_at": "2026-01-01T00:00:00+00:00",
                "finished_at": f"2026-01-01T00:00:{latency:06.3f}+00:00",
            },
            read_at=sent_at + (client if client is not None else latency),
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
        record(None, None, error="approve: 503"),
    ]
    s = summarize(records, duration=10)
    assert s.by_state == {"CANCELLED": 1, "COMPLETED": 2, "ERROR": 1, "NOT_FINISHED": 1}
    assert s.not_finished == 2 and s.errors == 1 and s.shed == 0
    assert s.latency["p50"] == 2.0 and s.latency["max"] == 16.5
    # One of the five admitted orders completed within 15 s.
    assert s.completed_within_slo == 1 and s.share_within_slo == 0.2
    assert s.started_per_second == 0.5


def test_headline_is_the_clients_clock_and_the_gap_is_what_the_workflow_cannot_see() -> None:
    # The workflow says 1.2 s; the client sent the start 2.0 s before it read COMPLETED
    # (time in the API, admission to Temporal, and the poll interval).
    records = [record("COMPLETED", 1.2, client=2.0), record("COMPLETED", 14.0, client=15.5)]
    s = summarize(records, duration=1)
    assert s.latency["p50"] == 2.0 and s.latency["max"] == 15.5
    assert s.workflow_latency["p50"] == 1.2 and s.workflow_latency["max"] == 14.0
    assert s.gap["p50"] == 0.8 and s.gap["max"] == 1.5
    # Within 15 s on the workflow's clock, not on the client's: the client counts.
    assert s.workflow_within_slo == 2
    assert s.completed_within_slo == 1 and s.share_within_slo == 0.5


def test_shed_starts_are_not_admitted_orders() -> None:
    records = [record("COMPLETED", 1.0), *(record(None, None, "start: 503") for _ in range(3))]
    s = summarize(records, duration=1)
    assert s.shed == 3 and s.errors == 3
    assert s.share_within_slo == 1.0  # the one admitted order made it


def test_lateness_says_whether_the_generator_kept_its_timetable() -> None:
    records = [
        record("COMPLETED", 1.0, sent_at=10.0, due_at=10.0),
        record("COMPLETED", 1.0, sent_at=10.25, due_at=10.1),
        record("COMPLETED", 1.0, sent_at=10.2, due_at=10.2),
    ]
    s = summarize(records, duration=0.3, offered_per_second=10)
    assert s.offered_per_second == 10
    assert s.lateness["p50"] == 0.0
    assert s.lateness["max"] is not None and abs(s.lateness["max"] - 0.15) < 1e-9
