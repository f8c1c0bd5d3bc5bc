"""Render a dashboard's panels to a PNG from a Prometheus: a picture for the docs.

    python -m observability.render --prometheus http://127.0.0.1:9090 \
        --dashboard orderflow-orders --minutes 15 --out docs/img/orderflow-orders.png

Not Grafana: the same queries as the dashboard JSON (Grafana's variables filled
in), drawn with matplotlib (installed by ``make setup``), so a picture can
be made without a Grafana server. Time series panels become line charts, stat
panels their last value.
"""

from __future__ import annotations

import argparse
import importlib
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from observability.dashboards import DASHBOARDS, Panel

STEP_SECONDS = 5


def _fill(expr: str, minutes: int) -> str:
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__range", f"{minutes}m")
        .replace("$__interval", f"{STEP_SECONDS}s")
    )


def _legend(template: str, labels: dict[str, str]) -> str:
    text = template
    for key, value in labels.items():
        text = text.replace("{{" + key + "}}", value)
    return text if text and text != "__auto" else ",".join(labels.values()) or "value"


def _range(prom: httpx.Client, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    params: dict[str, str | float] = {
        "query": expr,
        "start": start,
        "end": end,
        "step": STEP_SECONDS,
    }
    result: list[dict[str, Any]] = prom.get("/api/v1/query_range", params=params).json()["data"][
        "result"
    ]
    return result


def _instant(prom: httpx.Client, expr: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = prom.get("/api/v1/query", params={"query": expr}).json()["data"][
        "result"
    ]
    return result


def _format(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value:.0%}"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:g}"


def _draw(
    ax: Any, prom: httpx.Client, panel: Panel, start: float, end: float, minutes: int
) -> None:
    ax.set_title(panel.title, fontsize=9, loc="left")
    if panel.kind == "stat":
        values = [
            float(r["value"][1])
            for q in panel.queries
            for r in _instant(prom, _fill(q.expr, minutes))
        ]
        text = _format(values[0], panel.unit) if values else "No data"
        ax.text(0.5, 0.45, text, ha="center", va="center", fontsize=22, color="#2a7d2a")
        ax.set_axis_off()
        return
    for query in panel.queries:
        for series in _range(prom, _fill(query.expr, minutes), start, end):
            points = [(datetime.fromtimestamp(t), float(v)) for t, v in series["values"]]
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                linewidth=1,
                label=_legend(query.legend, series["metric"])[:40],
            )
    unit = {"s": "seconds", "percentunit": "share", "ops": "per second", "reqps": "req/s"}
    ax.set_ylabel(unit.get(panel.unit, panel.unit), fontsize=7)
    ax.tick_params(labelsize=6)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=5, loc="upper left", ncol=2)
    ax.grid(alpha=0.3)


def render(prometheus: str, uid: str, minutes: int, out: Path) -> None:
    # matplotlib (installed with the `load` extra): loaded by name, typed as Any, so
    # type-checking does not need it installed.
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    mdates: Any = importlib.import_module("matplotlib.dates")

    dash = next(d for d in DASHBOARDS if d.uid == uid)
    end = time.time()
    start = end - minutes * 60
    cols = 2
    rows = (len(dash.panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.6 * rows), squeeze=False)
    with httpx.Client(base_url=prometheus, timeout=10) as prom:
        for ax, panel in zip(axes.flat, dash.panels, strict=False):
            _draw(ax, prom, panel, start, end, minutes)
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    for ax in list(axes.flat)[len(dash.panels) :]:
        ax.set_axis_off()
    fig.suptitle(f"{dash.title} (rendered from Prometheus, last {minutes} min)", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--dashboard", default="orderflow-orders")
    parser.add_argument("--minutes", type=int, default=15)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    render(args.prometheus, args.dashboard, args.minutes, args.out)


if __name__ == "__main__":
    main()
