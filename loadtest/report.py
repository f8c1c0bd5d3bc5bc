"""Write a load run's report: summary JSON, a latency plot (PNG) and an HTML page."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt

from loadtest.orders import SLO_SECONDS, OrderRecord, Summary


def plot(records: list[OrderRecord], path: Path, title: str) -> None:
    done = [r for r in records if r.client_latency is not None]
    fig, (hist, timeline) = plt.subplots(1, 2, figsize=(12, 4.2))
    if done:
        t0 = min(r.sent_at for r in records)
        hist.hist([r.client_latency for r in done], bins=40, color="#3b7dd8")
        colours = {"COMPLETED": "#2a9d4b", "CANCELLED": "#e0a100", "FAILED": "#d1342f"}
        for state, colour in colours.items():
            pts = [r for r in done if r.state == state]
            timeline.scatter(
                [r.sent_at - t0 for r in pts],
                [r.client_latency for r in pts],
                s=8,
                color=colour,
                label=state,
            )
        timeline.legend(loc="upper left", fontsize=8)
    for ax in (hist, timeline):
        ax.grid(alpha=0.3)
    hist.axvline(SLO_SECONDS, color="#d1342f", linestyle="--", label="15 s objective")
    hist.set_xlabel("order completion latency, client's clock (s)")
    hist.set_ylabel("orders")
    hist.legend(fontsize=8)
    timeline.axhline(SLO_SECONDS, color="#d1342f", linestyle="--")
    timeline.set_xlabel("order started at (s into the run)")
    timeline.set_ylabel("client latency (s)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(records: list[OrderRecord], summary: Summary, directory: Path, title: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2))
    (directory / "orders.json").write_text(
        json.dumps([r.__dict__ for r in records], indent=1, default=str)
    )
    png = directory / "latency.png"
    plot(records, png, title)
    image = base64.b64encode(png.read_bytes()).decode()
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in summary.as_dict().items()
    )
    page = directory / "report.html"
    page.write_text(
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;"
        "text-align:left;border-bottom:1px solid #ddd}</style>"
        f"<h1>{html.escape(title)}</h1><table>{rows}</table>"
        f"<p><img alt='latency' src='data:image/png;base64,{image}'></p>"
        "<p>Per-request HTTP statistics: <a href='locust.html'>Locust report</a></p>"
    )
    return page


def _dist(d: dict[str, float | None], unit: str = "s", scale: float = 1.0) -> str:
    def one(v: float | None) -> str:
        return "-" if v is None else f"{v * scale:.2f} {unit}"

    return "  ".join(f"{k} {one(d.get(k))}" for k in ("p50", "p90", "p99", "max") if k in d)


def text(summary: Summary, page: Path) -> str:
    """The run's result as the person running it reads it, the client's clock first."""
    s = summary
    admitted = s.orders - s.shed
    share = "-" if s.share_within_slo is None else f"{100 * s.share_within_slo:.1f} %"
    lines = [
        "",
        f"orders {s.orders}  by state {s.by_state}  not finished {s.not_finished}  "
        f"shed {s.shed}  other errors {s.errors - s.shed}",
        f"client latency (start sent -> final state read, {s.follow}): {_dist(s.latency)}",
        f"  within {SLO_SECONDS:g} s: {s.completed_within_slo} of {admitted} admitted ({share})",
        f"workflow latency (its own finished_at - started_at): {_dist(s.workflow_latency)}",
        f"  client minus workflow: {_dist(s.gap)}",
    ]
    if s.offered_per_second is not None:
        lines.append(
            f"arrivals: offered {s.offered_per_second:g}/s, achieved "
            f"{s.started_per_second:.2f}/s, lateness {_dist(s.lateness, 'ms', 1000)}"
        )
    for name, h in sorted(s.http.items()):
        lines.append(
            f"  {name}: {h['requests']} ({h['per_second']}/s) failures {h['failures']}  "
            f"p50 {h['p50_ms']} ms  p99 {h['p99_ms']} ms  max {h['max_ms']} ms"
        )
    lines.append(f"report: {page}")
    return "\n".join(lines)
