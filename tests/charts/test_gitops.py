"""Rendered without a cluster, as `helm template` and Argo CD render the chart:
what the workloads read must not change from one render to the next.

Without a cluster `lookup` finds nothing, so the chart-made PostgreSQL password
is new at every render; PostgreSQL keeps the one it was initialised with, and
the next pods would be locked out. `postgres.builtin.existingSecret` (ci/gitops)
takes the password from a Secret the user manages instead.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.charts.chart import RELEASE, VALUE_SETS, Obj, Rendered, load_values, pod_spec, render

GITOPS = load_values(VALUE_SETS["gitops"])
EXISTING = GITOPS["postgres"]["builtin"]["existingSecret"]
GENERATED = f"{RELEASE}-postgres"


def password_refs(rendered: Rendered) -> dict[tuple[str, str], Any]:
    """Every container's PGPASSWORD / POSTGRES_PASSWORD reference, by workload and container."""
    refs = {}
    for workload in rendered.workloads():
        for container in pod_spec(workload)["containers"]:
            for var in container.get("env", []):
                if var["name"] in {"PGPASSWORD", "POSTGRES_PASSWORD"}:
                    where = (workload["metadata"]["name"], container["name"])
                    refs[where] = var["valueFrom"]["secretKeyRef"]
    return refs


def secrets(rendered: Rendered) -> dict[str, Obj]:
    return {s["metadata"]["name"]: s for s in rendered.kinds("Secret")}


def test_with_an_existing_secret_every_render_is_the_same() -> None:
    first, second = render(GITOPS), render(GITOPS)
    assert first.objects == second.objects
    # Nothing generated: no password Secret at all, and every reader asks the user's.
    assert GENERATED not in secrets(first)
    refs = password_refs(first)
    readers = {workload for workload, _ in refs}
    assert readers == {
        f"{RELEASE}-postgres",
        f"{RELEASE}-functions",
        f"{RELEASE}-order-worker",
        f"{RELEASE}-shipping-worker",
        f"{RELEASE}-migrations",
    }
    assert all(ref == {"name": EXISTING, "key": "password"} for ref in refs.values()), refs


def test_the_secret_key_is_configurable() -> None:
    values = {"postgres": {"builtin": {"existingSecret": EXISTING, "secretKey": "pg-pass"}}}
    refs = password_refs(render(values))
    assert refs and all(r == {"name": EXISTING, "key": "pg-pass"} for r in refs.values())


def test_without_it_each_render_makes_a_new_password() -> None:
    """What existingSecret is for: the references stay, the generated value does not."""
    first, second = render({}), render({})
    refs = password_refs(first)
    assert refs == password_refs(second)
    assert len(refs) == 5 and all(
        r == {"name": GENERATED, "key": "password"} for r in refs.values()
    )
    passwords = [
        base64.b64decode(secrets(r)[GENERATED]["data"]["password"]).decode()
        for r in (first, second)
    ]
    assert passwords[0] != passwords[1]
    # ... and that Secret is the only difference between the two renders.
    others = [[o for o in r.objects if o["metadata"]["name"] != GENERATED] for r in (first, second)]
    assert others[0] == others[1]
