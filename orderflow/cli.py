"""`orderflow`: drive and follow orders from a terminal, through the HTTP API.

    orderflow start demo-1            # a demo address and one ABC item
    orderflow approve demo-1
    orderflow watch demo-1            # live step-by-step view until the order ends
    orderflow cancel demo-1 --reason "changed my mind"
    orderflow update-address demo-1 --line1 "2 Side St" --city Paris --postal-code 75001 \
        --country FR
    orderflow status demo-1 | events demo-1

The API is found at API_BASE_URL (default http://127.0.0.1:8000); when API_TOKEN
is set, it is sent as the bearer token.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orderflow.settings import get_settings

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
console = Console()

TERMINAL = {"COMPLETED", "CANCELLED", "FAILED"}
# watch asks the API to hold each read until the order's state changes (status?wait),
# at most this long, so a step shows the moment it commits, and attempts and errors
# of the running step still refresh this often.
WATCH_WAIT_SECONDS = 1.0
WATCH_MIN_INTERVAL_SECONDS = 0.2

BaseUrl = Annotated[str | None, typer.Option("--api", help="API base URL (default: API_BASE_URL)")]


def _client(api: str | None) -> httpx.Client:
    settings = get_settings()
    headers = {}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    return httpx.Client(base_url=api or settings.api_base_url, headers=headers, timeout=15)


def _call(api: str | None, method: str, path: str, body: Any = None) -> dict[str, Any]:
    try:
        with _client(api) as http:
            resp = http.request(method, path, json=body)
    except httpx.HTTPError as err:
        console.print(f"[red]cannot reach the API: {err}[/red] (is `make run` running?)")
        raise typer.Exit(2) from err
    data: dict[str, Any] = resp.json() if resp.content else {}
    if resp.status_code >= 400:
        console.print(f"[red]{resp.status_code} {data.get('message', resp.text)}[/red]")
        raise typer.Exit(1)
    return data


def _address(
    line1: str, city: str, postal_code: str, country: str, line2: str | None
) -> dict[str, Any]:
    address = {"line1": line1, "city": city, "postal_code": postal_code, "country": country}
    if line2:
        address["line2"] = line2
    return address


@app.command()
def start(
    order_id: str,
    payment_id: Annotated[str | None, typer.Option(help="default: a fresh id")] = None,
    line1: str = "1 Demo Street",
    line2: str | None = None,
    city: str = "Berlin",
    postal_code: str = "10115",
    country: str = "DE",
    item: Annotated[list[str] | None, typer.Option(help="SKU:QTY, repeatable")] = None,
    api: BaseUrl = None,
) -> None:
    """Start an order."""
    body: dict[str, Any] = {
        "payment_id": payment_id or f"pay-{uuid.uuid4().hex[:12]}",
        "address": _address(line1, city, postal_code, country, line2),
    }
    if item:
        body["items"] = [
            {"sku": sku, "qty": int(qty)} for sku, _, qty in (i.partition(":") for i in item)
        ]
    data = _call(api, "POST", f"/orders/{order_id}/start", body)
    console.print(f"started [bold]{data['order_id']}[/bold] (workflow {data['workflow_id']})")


@app.command()
def approve(order_id: str, api: BaseUrl = None) -> None:
    """Approve an order in manual review."""
    _call(api, "POST", f"/orders/{order_id}/signals/approve")
    console.print(f"approved {order_id}")


@app.command()
def cancel(order_id: str, reason: str = "cancelled by customer", api: BaseUrl = None) -> None:
    """Cancel an order (refunded if already charged; refused once shipping started)."""
    _call(api, "POST", f"/orders/{order_id}/signals/cancel", {"reason": reason})
    console.print(f"cancel accepted for {order_id}")


@app.command("update-address")
def update_address(
    order_id: str,
    line1: Annotated[str, typer.Option()],
    city: Annotated[str, typer.Option()],
    postal_code: Annotated[str, typer.Option()],
    country: Annotated[str, typer.Option()],
    line2: str | None = None,
    api: BaseUrl = None,
) -> None:
    """Change the delivery address (refused once shipping started)."""
    body = {"address": _address(line1, city, postal_code, country, line2)}
    _call(api, "POST", f"/orders/{order_id}/signals/update-address", body)
    console.print(f"address updated for {order_id}")


@app.command()
def status(
    order_id: str,
    api: BaseUrl = None,
    live: Annotated[
        bool, typer.Option(help="ask the running workflow: current step, attempts, errors")
    ] = False,
) -> None:
    """Print the order's status as JSON (stored state; --live for the workflow's view)."""
    path = f"/orders/{order_id}/status" + ("?live=true" if live else "")
    console.print_json(json.dumps(_call(api, "GET", path)))


@app.command()
def events(order_id: str, api: BaseUrl = None) -> None:
    """List the order's stored events."""
    data = _call(api, "GET", f"/orders/{order_id}/events")
    table = Table("ts", "type", "payload")
    for event in data["events"]:
        table.add_row(event["ts"], event["type"], json.dumps(event["payload"]))
    console.print(table)


def render(data: dict[str, Any], elapsed: float) -> Group:
    state = data["state"]
    colour = {"COMPLETED": "green", "CANCELLED": "yellow", "FAILED": "red"}.get(state, "cyan")
    head = Text.assemble(
        (f"{data['order_id']}  ", "bold"),
        (state, f"bold {colour}"),
        f"  step: {data['step']}  elapsed: {elapsed:.1f}s",
    )
    steps = Table("step", "attempts", box=None)
    for step, count in data.get("attempts", {}).items():
        steps.add_row(step, str(count))
    errors = Table("at", "step", "attempt", "error", box=None)
    for err in data.get("errors", [])[-5:]:
        errors.add_row(
            err["at"][11:23], err["step"], str(err["attempt"]), f"{err['type']}: {err['message']}"
        )
    extra = Text(f"reason: {data['reason']}") if data.get("reason") else Text("")
    return Group(head, steps, Text("recent errors:", style="dim"), errors, extra)


@app.command()
def watch(
    order_id: str,
    api: BaseUrl = None,
    timeout: Annotated[float, typer.Option(help="give up after N seconds")] = 120,
) -> None:
    """Follow an order live until it ends."""
    started = time.monotonic()
    with _client(api) as http, Live(console=console, refresh_per_second=8) as live:
        params: dict[str, str | float] = {"live": "true", "wait": WATCH_WAIT_SECONDS}
        while True:
            resp = http.get(f"/orders/{order_id}/status", params=params)
            if resp.status_code != 200:
                console.print(f"[red]{resp.status_code} {resp.json().get('message')}[/red]")
                raise typer.Exit(1)
            data = resp.json()
            params["changed_from"] = data["state"]
            # The live state can run a step ahead of the stored one that `wait` watches,
            # which then answers at once: keep such reads a few a second at most.
            time.sleep(WATCH_MIN_INTERVAL_SECONDS)
            live.update(render(data, time.monotonic() - started))
            if data["state"] in TERMINAL:
                return
            if time.monotonic() - started > timeout:
                console.print("[yellow]still running; stopped watching[/yellow]")
                raise typer.Exit(3)


def main() -> None:
    app()
