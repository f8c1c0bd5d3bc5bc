"""Addresses dialled by a controller that runs in another namespace.

A short Service name (`orderflow-temporal:7233`) resolves only inside the release's
namespace. KEDA's operator evaluates the Temporal scaler from its own namespace
(`keda`), and an ExternalName is resolved by whoever dials the proxy: each of these
must be fully qualified (`<svc>.<ns>.svc.cluster.local`) or a value the user gave.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.charts.chart import NAMESPACE, VALUE_SETS, Rendered, merge_values, render, render_set

FQDN = re.compile(
    r"^(?P<svc>[a-z0-9-]+)\.(?P<ns>[a-z0-9-]+)\.svc\.cluster\.local(:(?P<port>\d+))?$"
)

# Value sets with every cross-namespace consumer on, dev and external Temporal.
EVERYTHING = {
    "otel": {"collector": {"enabled": True}},
    "functions": {"scaleToZero": {"mode": "keda-http"}},
    "orderWorker": {"keda": {"enabled": True}},
    "shippingWorker": {"keda": {"enabled": True}},
}
EXTERNAL = {"temporal": {"mode": "external", "external": {"address": "temporal.example.com:7233"}}}


def cross_namespace_addresses(rendered: Rendered) -> Iterator[tuple[str, str]]:
    """(where, address) for every name a controller outside the release's namespace dials."""
    for scaled in rendered.kinds("ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            if "endpoint" in trigger.get("metadata", {}):
                yield f"ScaledObject/{scaled['metadata']['name']}", trigger["metadata"]["endpoint"]
    for service in rendered.kinds("Service"):
        if service["spec"].get("type") == "ExternalName":
            yield f"Service/{service['metadata']['name']}", service["spec"]["externalName"]
    # Our pods dialling a service of another namespace: the collector in `monitoring`.
    endpoint = rendered.config_data().get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        yield "OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.split("://", 1)[-1]


def _sets() -> list[tuple[str, Rendered]]:
    sets = [(name, render_set(name)) for name in VALUE_SETS]
    sets.append(("everything-dev", render(EVERYTHING)))
    sets.append(("everything-external", render(merge_values(EVERYTHING, EXTERNAL))))
    return sets


@pytest.mark.parametrize(
    ("name", "rendered"), _sets(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_cross_namespace_addresses_are_fully_qualified_or_given(
    name: str, rendered: Rendered
) -> None:
    values = rendered.values
    otel_endpoint = values["otel"]["endpoint"].split("://", 1)[-1]
    given = {values["temporal"]["external"]["address"], otel_endpoint} - {""}
    # The namespaces of the other services the chart names: KEDA's, the collector's.
    elsewhere = {values["keda"]["namespace"], values["otel"]["collector"]["namespace"]}
    services = {s["metadata"]["name"]: s for s in rendered.kinds("Service")}
    for where, address in cross_namespace_addresses(rendered):
        if address in given:
            continue
        match = FQDN.match(address)
        assert match, f"{name}: {where} dials {address!r}, which resolves only in its namespace"
        if match["ns"] == NAMESPACE:
            # One of ours: the Service exists and serves that port.
            service = services[match["svc"]]
            ports = {p["port"] for p in service["spec"]["ports"]}
            assert match["port"] is None or int(match["port"]) in ports, (where, address)
        else:
            assert match["ns"] in elsewhere, (where, address)


def test_the_keda_scaler_dials_the_dev_temporal_by_its_full_name() -> None:
    """The bug this file is for: the scaler's endpoint was `orderflow-temporal:7233`."""
    rendered = render(EVERYTHING)
    endpoints = {e for _, e in cross_namespace_addresses(rendered) if ":7233" in e}
    assert endpoints == {f"orderflow-temporal.{NAMESPACE}.svc.cluster.local:7233"}
