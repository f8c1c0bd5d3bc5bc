"""Write a load run's report: summary JSON, a latency plot (PNG) and an HTML page.

The page is read by a person in a few seconds: the headline first (client latency
in seconds, the share within 15 s, starts shed), then the run's parameters, the
workflow's clock and the gap, HTTP per endpoint in ms, and the plots sized to the
page. The terminal summary uses the same rounding. The raw numbers stay in
summary.json and orders.json beside it.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt

from loadtest.orders import SLO_SECONDS, OrderRecord, Summary

QUANTILES = ("p50", "p90", "p99", "max")


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def millis(value: float | None) -> str:
    """Milliseconds to a sensible precision: 0.8, 34, 2500."""
    if value is None:
        return "-"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def share(part: float | None) -> str:
    return "-" if part is None else f"{100 * part:.1f} %"


def plot(records: list[OrderRecord], path: Path, title: str) -> None:
    done = [r for r in records if r.client_latency is not None]
    fig, (hist, timeline) = plt.subplots(1, 2, figsize=(11, 3.8))
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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _table(head: list[str], rows: list[list[str]], css: str = "") -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table{css}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _headline(s: Summary) -> str:
    admitted = s.orders - s.shed
    tiles = [(f"client {q}", seconds(s.latency.get(q))) for q in QUANTILES]
    tiles.append(
        (f"within {SLO_SECONDS:g} s", f"{share(s.share_within_slo)}"),
    )
    tiles.append(("shed (503)", f"{s.shed} of {s.orders}"))
    cells = "".join(
        f"<div class=tile><div class=label>{html.escape(k)}</div>"
        f"<div class=value>{html.escape(v)}</div></div>"
        for k, v in tiles
    )
    states = ", ".join(f"{k} {v}" for k, v in s.by_state.items())
    return (
        f"<div class=tiles>{cells}</div>"
        f"<p>{s.completed_within_slo} of {admitted} admitted orders completed within "
        f"{SLO_SECONDS:g} s on the client's clock (start request sent → final state read). "
        f"By state: {html.escape(states)}; not finished {s.not_finished}; "
        f"errors other than shed {s.errors - s.shed}.</p>"
    )


def _parameters(s: Summary, parameters: Mapping[str, str]) -> list[list[str]]:
    rows = [[k, v] for k, v in parameters.items()]
    rows.append(["orders followed by", s.follow or "-"])
    rows.append(["arrivals", f"{s.duration_seconds:.0f} s, {s.started_per_second:.2f} orders/s"])
    if s.offered_per_second is not None:
        lateness = _dist(s.lateness, "ms")
        rows.append(["timetable", f"offered {s.offered_per_second:g}/s; lateness {lateness}"])
    return rows


def _clocks(s: Summary) -> list[list[str]]:
    return [
        ["client (start sent → final state read)", *(seconds(s.latency.get(q)) for q in QUANTILES)],
        ["workflow (its finished_at - started_at)"]
        + [seconds(s.workflow_latency.get(q)) for q in QUANTILES],
        ["gap (client - workflow)", *(seconds(s.gap.get(q)) for q in QUANTILES)],
    ]


def _http(s: Summary) -> list[list[str]]:
    return [
        [
            name,
            str(h["requests"]),
            f"{h['per_second']}",
            str(h["failures"]),
            millis(h["p50_ms"]),
            millis(h["p99_ms"]),
            millis(h["max_ms"]),
        ]
        for name, h in sorted(s.http.items())
    ]


STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;"
    "color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}"
    "table{border-collapse:collapse}td,th{padding:4px 12px;text-align:right;"
    "border-bottom:1px solid #ddd}td:first-child,th:first-child,.text td,.text th{text-align:left}"
    ".tiles{display:flex;flex-wrap:wrap;gap:10px}.tile{border:1px solid #ccd;"
    "border-radius:6px;padding:8px 14px;min-width:110px}.label{font-size:.8em;color:#666}"
    ".value{font-size:1.5em;font-weight:600}img{max-width:100%;height:auto}"
)


def page(summary: Summary, title: str, image_png: bytes, parameters: Mapping[str, str]) -> str:
    s = summary
    image = base64.b64encode(image_png).decode()
    http_head = ["endpoint", "requests", "per s", "failures", "p50", "p99", "max"]
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style><h1>{html.escape(title)}</h1>"
        f"{_headline(s)}"
        f"<h2>Run</h2>{_table(['parameter', 'value'], _parameters(s, parameters), ' class=text')}"
        f"<h2>Clocks</h2>{_table(['', *QUANTILES], _clocks(s))}"
        f"<h2>HTTP per endpoint (ms)</h2>{_table(http_head, _http(s))}"
        f"<h2>Latency</h2><p><img alt='latency histogram and timeline' "
        f"src='data:image/png;base64,{image}'></p>"
        "<p>Raw data: <a href='summary.json'>summary.json</a>, "
        "<a href='orders.json'>orders.json</a>; Locust's own report: "
        "<a href='locust.html'>locust.html</a>.</p></html>"
    )


def write(
    records: list[OrderRecord],
    summary: Summary,
    directory: Path,
    title: str,
    parameters: Mapping[str, str] | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2))
    (directory / "orders.json").write_text(
        json.dumps([r.__dict__ for r in records], indent=1, default=str)
    )
    png = directory / "latency.png"
    plot(records, png, title)
    report = directory / "report.html"
    report.write_text(page(summary, title, png.read_bytes(), parameters or {}))
    return report


def _dist(d: Mapping[str, float | None], fmt: str = "s") -> str:
    one = seconds if fmt == "s" else (lambda v: millis(None if v is None else v * 1000))
    return "  ".join(f"{k} {one(d.get(k))}" for k in QUANTILES if k in d)


def text(summary: Summary, page: Path) -> str:
    """The run's result as the person running it reads it, the client's clock first."""
    s = summary
    admitted = s.orders - s.shed
    lines = [
        "",
        f"orders {s.orders}  by state {s.by_state}  not finished {s.not_finished}  "
        f"shed {s.shed}  other errors {s.errors - s.shed}",
        f"client latency (start sent -> final state read, {s.follow}): {_dist(s.latency)}",
        f"  within {SLO_SECONDS:g} s: {s.completed_within_slo} of {admitted} admitted "
        f"({share(s.share_within_slo)})",
        f"workflow latency (its own finished_at - started_at): {_dist(s.workflow_latency)}",
        f"  client minus workflow: {_dist(s.gap)}",
    ]
    if s.offered_per_second is not None:
        lines.append(
            f"arrivals: offered {s.offered_per_second:g}/s, achieved "
            f"{s.started_per_second:.2f}/s, lateness {_dist(s.lateness, 'ms')}"
        )
    for name, h in sorted(s.http.items()):
        lines.append(
            f"  {name}: {h['requests']} ({h['per_second']}/s) failures {h['failures']}  "
            f"p50 {millis(h['p50_ms'])}  p99 {millis(h['p99_ms'])}  max {millis(h['max_ms'])}"
        )
    lines.append(f"report: {page}")
    return "\n".join(lines)
