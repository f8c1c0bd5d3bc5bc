"""Load test of the order API over HTTP, as real clients use it (Locust).

Open model: orders are started at a target rate whatever the system's latency;
each order is then followed (status polled) until it ends, in a greenlet of its
own, so a slow order never slows the arrival of the next one.

    locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:8000 \
        --orders-per-second 10 --duration 60 --report-dir reports/load

or `make load RATE=10 DURATION=60` (add `UI=1` for Locust's web UI on :8089).
Scenarios (--scenario): `rate` (default), `sequential` (--orders one after the
other), `burst` (--orders all at once). `--reads-per-second N` adds N status reads
a second of recent orders on top (dashboards, customers refreshing a page), for
measuring endpoint latency at a given request rate.

Order latency is measured on the client's clock, as a user sees it: from sending
the start request to reading the terminal state (loadtest/orders.py). Orders are
followed by polling status every --poll-interval seconds (default 1), or with
--wait-seconds S by long-polling `status?wait=S`, which answers the moment the
order ends. The workflow's own `finished_at - started_at` is reported beside it.
Client latency is also reported to Locust as the pseudo-request `ORDER completed`,
so Locust's UI and HTML report show its percentiles next to the HTTP endpoints.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, LoadTestShape, events, task
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.exception import StopUser

from loadtest import report
from loadtest.orders import OrderRecord, summarize

ADDRESS = {"line1": "1 Load Street", "city": "Berlin", "postal_code": "10115", "country": "DE"}
NEW_ADDRESS = {"line1": "2 Other Road", "city": "Hamburg", "postal_code": "20095", "country": "DE"}
PROGRESS_EVERY_SECONDS = 2.0
USERS_PER_RATE = 4
FOLLOWER_CONNECTIONS = 500
READ_FROM_LAST = 50

_records: list[OrderRecord] = []
_followers: list[gevent.Greenlet] = []
_accepted: list[str] = []  # ids whose start was answered 202, for the extra reads
_background: list[gevent.Greenlet] = []  # progress line first, then the extra reads
_session: FastHttpSession | None = None
_started_at = 0.0
_users_started = 0


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("orderflow")
    group.add_argument(
        "--scenario",
        choices=["rate", "sequential", "burst"],
        default="rate",
        help="load pattern",
    )
    group.add_argument(
        "--orders-per-second", type=float, default=2.0, help="target arrival rate (open model)"
    )
    group.add_argument("--duration", type=float, default=60.0, help="seconds of arrivals")
    group.add_argument("--orders", type=int, default=20, help="orders for sequential/burst")
    group.add_argument(
        "--cancel-share",
        type=float,
        default=0.0,
        help="share of orders cancelled in review instead of approved",
    )
    group.add_argument(
        "--update-share",
        type=float,
        default=0.0,
        help="share of orders whose address is updated before approval",
    )
    group.add_argument(
        "--api-token", default="", env_var="API_TOKEN", help="Bearer token, if the API requires one"
    )
    group.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        help="seconds between status reads of an order in flight",
    )
    group.add_argument(
        "--wait-seconds",
        type=float,
        default=0.0,
        help="follow orders with status?wait=S (long poll) instead of polling; 0: poll",
    )
    group.add_argument(
        "--drain-seconds",
        type=float,
        default=45.0,
        help="after arrivals stop, wait this long for orders in flight",
    )
    group.add_argument(
        "--reads-per-second",
        type=float,
        default=0.0,
        help="extra status reads a second, of the most recently started orders",
    )
    group.add_argument("--report-dir", default="reports/load")


def _opts(environment: Environment) -> Any:
    return environment.parsed_options


def _headers(environment: Environment) -> dict[str, str]:
    token = _opts(environment).api_token
    return {"Authorization": f"Bearer {token}"} if token else {}


def _users_for(environment: Environment) -> int:
    opts = _opts(environment)
    if opts.scenario == "sequential":
        return 1
    if opts.scenario == "burst":
        return int(opts.orders)
    # Each user starts one order every USERS_PER_RATE seconds, so a slow start or
    # approve (up to that long) does not lower the arrival rate.
    return max(1, math.ceil(opts.orders_per_second * USERS_PER_RATE))


class OrderClient(FastHttpUser):
    def on_start(self) -> None:
        global _users_started
        opts = _opts(self.environment)
        self._pace = _users_for(self.environment) / max(opts.orders_per_second, 1e-9)
        self._next_at: float | None = None
        self._due: float | None = None  # when the order about to be sent was due
        if opts.scenario == "rate":
            # A fixed timetable per user: user i starts orders at i / rate, then every
            # `pace` seconds, however long each order's requests took. Users are spawned
            # together, so without these phases they would fire in the same instant
            # (bursts every `pace` seconds, not a rate).
            self._next_at = _started_at + _users_started / max(opts.orders_per_second, 1e-9)
            _users_started += 1
            gevent.sleep(self.wait_time())

    def wait_time(self) -> float:
        if self._next_at is None:
            return 0.0
        delay = max(0.0, self._next_at - time.time())
        self._due = self._next_at
        self._next_at += self._pace
        return delay

    @task
    def one_order(self) -> None:
        opts = _opts(self.environment)
        if opts.scenario == "rate" and time.time() - _started_at >= opts.duration:
            return  # the last pacing cycle may fire after the arrival window: no extra orders
        if opts.scenario in ("sequential", "burst") and len(_records) >= opts.orders:
            raise StopUser
        record = self._start_and_act()
        if record is not None and opts.scenario == "sequential":
            _follow(self.environment, record)
        if opts.scenario == "burst":
            raise StopUser

    def _start_and_act(self) -> OrderRecord | None:
        opts = _opts(self.environment)
        draw = random.random()
        kind = (
            "cancel"
            if draw < opts.cancel_share
            else "update"
            if draw < opts.cancel_share + opts.update_share
            else "approve"
        )
        oid = f"load-{uuid.uuid4().hex[:16]}"
        record = OrderRecord(order_id=oid, kind=kind, sent_at=time.time(), due_at=self._due)
        _records.append(record)
        headers = _headers(self.environment)
        resp = self.client.post(
            f"/orders/{oid}/start",
            name="POST /orders/[id]/start",
            json={"payment_id": f"pay-{oid}", "address": ADDRESS},
            headers=headers,
        )
        if resp.status_code != 202:
            record.error = f"start: {resp.status_code}"
            return None
        _accepted.append(oid)
        if _opts(self.environment).scenario != "sequential":
            # Followed from now on, even if this user is stopped before it approves.
            _followers.append(gevent.spawn(_follow, self.environment, record))
        if kind == "update":
            self.client.post(
                f"/orders/{oid}/signals/update-address",
                name="POST /orders/[id]/signals/update-address",
                json={"address": NEW_ADDRESS},
                headers=headers,
            )
        action = "cancel" if kind == "cancel" else "approve"
        resp = self.client.post(
            f"/orders/{oid}/signals/{action}",
            name=f"POST /orders/[id]/signals/{action}",
            json={"reason": "load test"} if kind == "cancel" else None,
            headers=headers,
        )
        if resp.status_code != 202:
            record.error = f"{action}: {resp.status_code}"
        return record


def _follow(environment: Environment, record: OrderRecord) -> None:
    """Poll the order's status until it ends (or the run's drain window closes)."""
    assert _session is not None
    opts = _opts(environment)
    waiting = opts.wait_seconds > 0
    path = f"/orders/{record.order_id}/status" + (f"?wait={opts.wait_seconds:g}" if waiting else "")
    name = "GET /orders/[id]/status?wait" if waiting else "GET /orders/[id]/status"
    # A poller reads first after one interval; a long poll asks at once, and again at
    # once after each answer (after a failed one, a 503, it waits an interval).
    pause = 0.0 if waiting else opts.poll_interval
    while not record.done and not record.error:
        gevent.sleep(pause)
        resp = _session.get(path, name=name, headers=_headers(environment))
        record.polls += 1
        pause = 0.0 if waiting and resp.status_code == 200 else opts.poll_interval
        if resp.status_code != 200:
            continue
        data = resp.json()
        if data["state"] in ("COMPLETED", "CANCELLED", "FAILED"):
            record.finish(data, read_at=time.time())
            environment.events.request.fire(
                request_type="ORDER",
                name=f"{record.state.lower()}" if record.state else "?",
                response_time=(record.client_latency or 0) * 1000,
                response_length=0,
                exception=None,
                context={},
            )


class Arrivals(LoadTestShape):
    """Keeps the user count that produces the target rate, for --duration seconds."""

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        opts = _opts(self.runner.environment)
        users = _users_for(self.runner.environment)
        if opts.scenario in ("sequential", "burst"):
            finished = len(_records) >= opts.orders and all(r.done or r.error for r in _records)
            return None if finished or self.get_run_time() > 600 else (users, users)
        return (users, users) if self.get_run_time() < opts.duration else None


def _reads(environment: Environment) -> None:
    """Status reads at --reads-per-second, each of one of the last orders started."""
    assert _session is not None
    interval = 1.0 / _opts(environment).reads_per_second
    due = time.time()
    while True:
        due += interval
        gevent.sleep(max(0.0, due - time.time()))
        recent = _accepted[-READ_FROM_LAST:]
        if recent:
            # Its own greenlet: a slow answer must not lower the read rate.
            gevent.spawn(
                _session.get,
                f"/orders/{random.choice(recent)}/status",
                name="GET /orders/[id]/status",
                headers=_headers(environment),
            )


def _progress(environment: Environment) -> None:
    while True:
        gevent.sleep(PROGRESS_EVERY_SECONDS)
        elapsed = time.time() - _started_at
        done = [r for r in _records if r.done]
        by_state = {
            s: sum(1 for r in done if r.state == s) for s in ("COMPLETED", "CANCELLED", "FAILED")
        }
        in_flight = sum(1 for r in _records if not r.done and not r.error)
        print(  # noqa: T201 - live progress for the person running the load
            f"[{elapsed:6.1f}s] started {len(_records)} ({len(_records) / elapsed:.1f}/s)  "
            f"in flight {in_flight}  completed {by_state['COMPLETED']}  "
            f"cancelled {by_state['CANCELLED']}  failed {by_state['FAILED']}  "
            f"shed {sum(1 for r in _records if r.error == 'start: 503')}  "
            f"errors {sum(1 for r in _records if r.error and r.error != 'start: 503')}",
            flush=True,
        )


@events.test_start.add_listener
def _on_start(environment: Environment, **_: Any) -> None:
    global _session, _started_at
    _started_at = time.time()
    # One session follows every order in flight: it must not queue them behind its
    # default 10 connections, or the tool measures itself.
    _session = FastHttpSession(
        base_url=environment.host,
        request_event=environment.events.request,
        user=None,
        concurrency=FOLLOWER_CONNECTIONS,
    )
    _background.append(gevent.spawn(_progress, environment))
    if _opts(environment).reads_per_second > 0:
        _background.append(gevent.spawn(_reads, environment))


@events.test_stop.add_listener
def _on_stop(environment: Environment, **_: Any) -> None:
    opts = _opts(environment)
    gevent.killall([g for g in _background if g is not _background[0]])
    gevent.joinall(_followers, timeout=opts.drain_seconds)
    gevent.killall(_followers)
    _background[0].kill()
    duration = max(1e-9, max((r.sent_at for r in _records), default=_started_at) - _started_at)
    summary = summarize(
        _records,
        duration,
        offered_per_second=opts.orders_per_second if opts.scenario == "rate" else None,
        follow=(
            f"long poll status?wait={opts.wait_seconds:g}"
            if opts.wait_seconds > 0
            else f"poll status every {opts.poll_interval:g} s"
        ),
    )
    summary.http = {
        entry.name: {
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "per_second": round(entry.total_rps, 1),
            "p50_ms": entry.get_response_time_percentile(0.5),
            "p99_ms": entry.get_response_time_percentile(0.99),
            "max_ms": entry.max_response_time,
        }
        for entry in environment.stats.entries.values()
        if entry.method != "ORDER"
    }
    title = (
        f"orderflow load: {opts.scenario}, {opts.orders_per_second:g} orders/s, "
        f"{len(_records)} orders"
    )
    parameters = {
        "API": environment.host or "-",
        "scenario": opts.scenario,
        "orders": (
            f"{opts.orders_per_second:g}/s for {opts.duration:g} s"
            if opts.scenario == "rate"
            else f"{opts.orders} ({opts.scenario})"
        ),
        "cancelled / address updated": f"{opts.cancel_share:.0%} / {opts.update_share:.0%}",
        "extra status reads": f"{opts.reads_per_second:g}/s",
    }
    page = report.write(_records, summary, Path(opts.report_dir), title, parameters)
    print(report.text(summary, page), flush=True)  # noqa: T201 - the run's result
    if summary.not_finished or summary.errors > summary.shed:
        environment.process_exit_code = 1
