"""The benchmark report's cost table: every process's share, and the host's speed
around the point, which the CPU figures are only comparable with."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, generate_latest

from functions import metrics
from loadtest import bench_report, host, prometheus_text


def a_point(**extra: Any) -> dict[str, Any]:
    per = dict.fromkeys(bench_report.PER_ORDER, 0.01)
    return {
        "label": "10 orders/s",
        "cpu_per_order_stack": 0.06,
        "cpu_per_order_generator": 0.005,
        "cpu_per_order": per,
        **extra,
    }


def test_a_cost_row_carries_the_host_reference_before_and_after() -> None:
    (row,) = bench_report.cpu_rows([a_point(reference_ms=[98.4, 171.6])])
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "10 orders/s"
    assert cells[1] == "**60**"
    assert cells[2 : 2 + len(bench_report.PER_ORDER)] == ["10"] * len(bench_report.PER_ORDER)
    assert cells[-2:] == ["5", "98 / 172"]


def test_a_point_from_before_the_reference_shows_a_dash() -> None:
    (row,) = bench_report.cpu_rows([a_point()])
    assert row.rstrip("| ").endswith("\u2013")  # the en dash the report prints for "none"


def test_the_reference_workload_takes_measurable_time() -> None:
    ms = host.reference_workload_ms()
    assert 1 < ms < 60_000


def test_the_shed_cell_says_which_signal_refused_the_starts() -> None:
    by = {"active_orders": 12, "start_latency": 38}
    assert bench_report.shed_cell({"shed": 50, "shed_by": by}) == (
        "50 (12 active orders, 38 start latency)"
    )
    assert bench_report.shed_cell(
        {"shed": 3, "shed_by": {"active_orders": 3, "start_latency": 0}}
    ) == ("3 (3 active orders)")
    assert bench_report.shed_cell({"shed": 0, "shed_by": {"active_orders": 0}}) == "0"
    assert bench_report.shed_cell({"shed": 7}) == "7"  # a point recorded before the split


def test_the_bench_reads_the_apis_refusals_by_signal_from_its_metrics() -> None:
    before = prometheus_text.shed_counts(generate_latest(REGISTRY).decode())
    metrics.ORDERS_SHED.labels(reason="start_latency").inc(2)
    after = prometheus_text.shed_counts(generate_latest(REGISTRY).decode())
    assert set(after) == {"active_orders", "start_latency"}
    assert after["start_latency"] == before["start_latency"] + 2
    assert after["active_orders"] == before["active_orders"]


TEMPORAL_TEXT = """# TYPE service_requests counter
service_requests{operation="RespondWorkflowTaskCompleted",service_name="history"} 8
service_requests{operation="RespondWorkflowTaskCompleted",service_name="frontend"} 8
service_requests{operation="StartWorkflowExecution",service_name="history"} 4
# TYPE persistence_requests counter
persistence_requests{operation="UpdateWorkflowExecution",service_name="history"} 24
persistence_requests{operation="GetNamespace",service_name="frontend"} 3
"""


def test_temporals_work_is_read_from_its_metrics_by_service_and_operation() -> None:
    work = prometheus_text.temporal_work(TEMPORAL_TEXT)
    # The frontend's half of each workflow task is the same task: counted once.
    assert work["workflow tasks"] == 8
    assert work["executions started"] == 4
    assert work["execution updates"] == 24
    assert work["persistence requests"] == 27
    assert work["signals"] == 0


def test_the_report_shows_temporals_work_only_where_it_was_counted() -> None:
    counted = a_point(temporal_per_order={"workflow tasks": 4.0, "execution updates": 12.0})
    lines = bench_report.temporal_lines([counted, a_point(label="plain dev server")])
    assert "| point | workflow tasks | execution updates |" in lines
    assert "| 10 orders/s | 4.00 | 12.00 |" in lines
    assert not any(line.startswith("| plain dev server") for line in lines)
    assert bench_report.temporal_lines([a_point(temporal_per_order=None)]) == []


def a_rate_point(name: str, offered: float, orders: int, within: int, shed: int) -> dict[str, Any]:
    return a_point(
        name=name,
        label=f"{offered:g} orders/s",
        offered_per_second=offered,
        orders=orders,
        completed_within_slo=within,
        shed=shed,
        share_within_slo=within / (orders - shed),
        latency={"p99": 9.5, "max": 12.25},
    )


def test_goodput_is_orders_within_15_s_per_offered_second_against_the_stacks_best() -> None:
    points = [
        a_rate_point("fresh-10-poll1", 10, 600, 600, 0),
        a_rate_point("fresh-25-poll1", 25, 1500, 1170, 300),  # 19.5/s: the best
        a_rate_point("fresh-34-poll1", 34, 2040, 960, 1000),  # 16.0/s
        a_rate_point("external-25-poll1", 25, 1500, 900, 600),
        a_rate_point("preloaded-10-poll1", 10, 600, 600, 0),  # not an admission stack
        a_rate_point("fresh-10-wait", 10, 600, 600, 0),  # not in the admission set
        a_point(name="one-at-a-time", offered_per_second=None, orders=20),
    ]
    found = bench_report.goodput(points)
    assert set(found) == {"fresh", "external"}
    assert found["fresh"]["best"] == 19.5
    assert found["fresh"]["share_of_best"] == {
        "fresh-10-poll1": 0.513,
        "fresh-25-poll1": 1.0,
        "fresh-34-poll1": 0.821,
    }
    assert found["external"]["best"] == 15.0
    rows = [line for line in bench_report.goodput_lines(points) if line.startswith("| `make")]
    assert rows[2] == (
        "| `make run` defaults | 34 orders/s | 1 | 49 % | 1040 | **16.0/s** | 82 % | 92.3 % "
        "| 9.50 s / 12.25 s |"
    )


def test_a_load_run_twice_counts_the_mean_of_its_passes() -> None:
    # A B B A: the second passes are later, on a stack holding more orders.
    first_25 = a_rate_point("fresh-25-poll1", 25, 1500, 1080, 400)  # 18.0/s
    first_34 = a_rate_point("fresh-34-poll1", 34, 2040, 1050, 950)  # 17.5/s
    second_34 = a_rate_point("fresh-34-poll1-2", 34, 2040, 990, 1000)  # 16.5/s
    second_25 = a_rate_point("fresh-25-poll1-2", 25, 1500, 960, 500)  # 16.0/s
    second_34["latency"] = {"p99": 11.0, "max": 13.5}
    second_25["admitted"] = 990  # ten starts failed other than by a refusal: not admitted
    points = [first_25, first_34, second_34, second_25]
    found = bench_report.goodput(points)["fresh"]
    assert found["passes"] == {"fresh-25-poll1": [18.0, 16.0], "fresh-34-poll1": [17.5, 16.5]}
    assert found["points"] == {"fresh-25-poll1": 17.0, "fresh-34-poll1": 17.0}
    assert found["share_of_best"] == {"fresh-25-poll1": 1.0, "fresh-34-poll1": 1.0}
    rows = [line for line in bench_report.goodput_lines(points) if line.startswith("| `make")]
    assert rows == [
        "| `make run` defaults | 25 orders/s | 2 | 30 % | 2090 | **17.0/s** (18.0, 16.0) | "
        "100 % | 97.6 % | 9.50 s / 12.25 s |",
        "| `make run` defaults | 34 orders/s | 2 | 48 % | 2130 | **17.0/s** (17.5, 16.5) | "
        "100 % | 95.8 % | 11.00 s / 13.50 s |",
    ]


def test_the_plain_dev_servers_cost_is_put_beside_make_runs() -> None:
    embedded = a_point(name="fresh-10-poll1")
    embedded["cpu_per_order"] = {**embedded["cpu_per_order"], "temporal": 0.055}
    plain = a_point(name="external-10-poll1", cpu_per_order_stack=0.09)
    plain["cpu_per_order"] = {**plain["cpu_per_order"], "temporal": 0.041}
    line = bench_report.plain_server_line({"fresh-10-poll1": embedded, "external-10-poll1": plain})
    assert "**41 ms** of CPU an order" in line
    assert "embedded one (SQLite file, one partition) **55 ms**" in line
    assert "the whole stack 90 against 60 ms" in line
    assert bench_report.plain_server_line({"fresh-10-poll1": embedded}) == ""
