"""What the load generator records about each order, and the summary it reports.

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
    sent_at: float  # wall clock, seconds since the epoch, when the start was sent
    state: str | None = None
    latency: float | None = None  # workflow finished_at - started_at, seconds
    polls: int = 0
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    def finish(self, status: dict[str, Any]) -> None:
        self.state = status["state"]
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


@dataclass
class Summary:
    orders: int
    by_state: dict[str, int]
    not_finished: int
    errors: int
    latency: dict[str, float | None]
    completed_within_slo: int
    share_within_slo: float | None
    duration_seconds: float
    started_per_second: float
    http: dict[str, dict[str, float | int | None]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(records: list[OrderRecord], duration: float) -> Summary:
    by_state: dict[str, int] = {}
    for r in records:
        key = r.state if r.state and r.done else ("ERROR" if r.error else "NOT_FINISHED")
        by_state[key] = by_state.get(key, 0) + 1
    completed = sorted(
        r.latency for r in records if r.state == "COMPLETED" and r.latency is not None
    )
    within = sum(1 for v in completed if v <= SLO_SECONDS)
    return Summary(
        orders=len(records),
        by_state=dict(sorted(by_state.items())),
        not_finished=sum(1 for r in records if not r.done),
        errors=sum(1 for r in records if r.error),
        latency={
            "p50": percentile(completed, 50),
            "p90": percentile(completed, 90),
            "p99": percentile(completed, 99),
            "max": completed[-1] if completed else None,
            "mean": sum(completed) / len(completed) if completed else None,
        },
        completed_within_slo=within,
        share_within_slo=within / len(completed) if completed else None,
        duration_seconds=duration,
        started_per_second=len(records) / duration if duration > 0 else 0.0,
    )
