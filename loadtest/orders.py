"""What the load generator records about each order, and the summary it reports.

Two clocks per order. The headline is the **client's**: from sending the start
request to reading the terminal state, as a user of the API sees it (it includes
the API, admission to Temporal, and the poll interval or long-poll answer). The
**workflow's** own ``finished_at - started_at`` comes second: it starts only once
Temporal has accepted the start, so the gap between the two is time the workflow
cannot see. The generator also reports whether it kept its own timetable.

Pure data and arithmetic, so it is unit-tested without Locust or a server.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

TERMINAL = frozenset({"COMPLETED", "CANCELLED", "FAILED"})
SLO_SECONDS = 15.0


@dataclass
class OrderRecord:
    order_id: str
    kind: str  # "approve", "cancel" or "update" (what the generator did to it)
    sent_at: float  # wall clock (epoch seconds) when the start request was sent
    due_at: float | None = None  # when the timetable wanted it sent (rate scenario)
    state: str | None = None
    latency: float | None = None  # the workflow's finished_at - started_at, seconds
    read_at: float | None = None  # wall clock when the terminal state was read
    polls: int = 0
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def client_latency(self) -> float | None:
        """Start request sent -> terminal state read, on the client's clock."""
        return None if self.read_at is None else self.read_at - self.sent_at

    def finish(self, status: dict[str, Any], read_at: float) -> None:
        self.state = status["state"]
        self.read_at = read_at
        started, finished = status.get("started_at"), status.get("finished_at")
        if started and finished:
            self.latency = (
                datetime.fromisoformat(finished) - datetime.fromisoformat(started)
            ).total_seconds()


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def distribution(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    return {
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else None,
        "mean": sum(ordered) / len(ordered) if ordered else None,
    }


@dataclass
class Summary:
    orders: int
    by_state: dict[str, int]
    not_finished: int
    errors: int
    # The client's clock (start sent -> terminal state read): the headline.
    latency: dict[str, float | None]
    completed_within_slo: int
    share_within_slo: float | None  # of the admitted orders (start answered 202)
    admitted: int  # starts answered 202
    shed: int  # starts refused with 503 (admission control past capacity)
    # The workflow's clock, and how much of the client's time it does not see.
    workflow_latency: dict[str, float | None]
    workflow_within_slo: int
    gap: dict[str, float | None]
    duration_seconds: float
    started_per_second: float
    # Did the generator keep its timetable? Lateness = sent - due, seconds.
    offered_per_second: float | None = None
    lateness: dict[str, float | None] = field(default_factory=dict)
    follow: str = ""  # how orders were followed: "poll every 1 s", "wait 20 s"
    http: dict[str, dict[str, float | int | None]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    records: list[OrderRecord],
    duration: float,
    offered_per_second: float | None = None,
    follow: str = "",
) -> Summary:
    by_state: dict[str, int] = {}
    for r in records:
        key = r.state if r.state and r.done else ("ERROR" if r.error else "NOT_FINISHED")
        by_state[key] = by_state.get(key, 0) + 1
    completed = [r for r in records if r.state == "COMPLETED"]
    client = [r.client_latency for r in completed if r.client_latency is not None]
    workflow = [r.latency for r in completed if r.latency is not None]
    gaps = [
        r.client_latency - r.latency
        for r in completed
        if r.client_latency is not None and r.latency is not None
    ]
    within = sum(1 for v in client if v <= SLO_SECONDS)
    late = [max(0.0, r.sent_at - r.due_at) for r in records if r.due_at is not None]
    shed = sum(1 for r in records if r.error == "start: 503")
    admitted = sum(1 for r in records if not (r.error or "").startswith("start:"))
    gap = distribution(gaps)
    return Summary(
        orders=len(records),
        by_state=dict(sorted(by_state.items())),
        not_finished=sum(1 for r in records if not r.done),
        errors=sum(1 for r in records if r.error),
        latency=distribution(client),
        completed_within_slo=within,
        # Of every admitted order, not only of those that completed: a lost or late
        # order misses too. A start refused with 503 (shed) was never admitted.
        share_within_slo=within / admitted if admitted else None,
        admitted=admitted,
        shed=shed,
        workflow_latency=distribution(workflow),
        workflow_within_slo=sum(1 for v in workflow if v <= SLO_SECONDS),
        gap={k: gap[k] for k in ("p50", "p99", "max")},
        duration_seconds=duration,
        started_per_second=len(records) / duration if duration > 0 else 0.0,
        offered_per_second=offered_per_second,
        lateness={k: v for k, v in distribution(late).items() if k != "mean"} if late else {},
        follow=follow,
    )
