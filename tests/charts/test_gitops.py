"""Rendered without a cluster, as `helm template`, Argo CD and Flux render the chart:
what the workloads read must not change from one render to the next.

The chart used to generate the PostgreSQL password (randAlphaNum, kept across upgrades
with `lookup`). Without a cluster `lookup` finds nothing, so every render made a new
password; PostgreSQL keeps the one it was initialised with, and the next pods were
locked out. Now the chart never creates that Secret: it reads
`<fullname>-postgres-password` (created once by `make deploy`, or by you) or
`postgres.builtin.existingSecret`, so every render is the same by default.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.charts.chart import (
    CHART_DIR,
    RELEASE,
    VALUE_SETS,
    Obj,
    Rendered,
    load_values,
    pod_spec,
    render,
)

GITOPS = load_values(VALUE_SETS["gitops"])
EXISTING = GITOPS["postgres"]["builtin"]["existingSecret"]
DEFAULT_SECRET = f"{RELEASE}-postgres-password"
READERS = {
    f"{RELEASE}-postgres",
    f"{RELEASE}-functions",
    f"{RELEASE}-order-worker",
    f"{RELEASE}-shipping-worker",
    f"{RELEASE}-migrations",
}


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


@pytest.mark.parametrize(
    ("values", "secret"),
    [({}, DEFAULT_SECRET), (GITOPS, EXISTING)],
    ids=["default", "existing-secret"],
)
def test_every_render_is_the_same(values: dict[str, Any], secret: str) -> None:
    """Failed before for the default: the generated password differed at each render."""
    first, second = render(values), render(values)
    assert first.objects == second.objects
    # Nothing generated: no password Secret at all, and every reader asks the same one.
    assert not {DEFAULT_SECRET, f"{RELEASE}-postgres", secret} & set(secrets(first))
    refs = password_refs(first)
    assert {workload for workload, _ in refs} == READERS
    assert all(ref == {"name": secret, "key": "password"} for ref in refs.values()), refs


def test_the_secret_key_is_configurable() -> None:
    values = {"postgres": {"builtin": {"existingSecret": EXISTING, "secretKey": "pg-pass"}}}
    refs = password_refs(render(values))
    assert refs and all(r == {"name": EXISTING, "key": "pg-pass"} for r in refs.values())
    values = {"postgres": {"builtin": {"secretKey": "pg-pass"}}}
    refs = password_refs(render(values))
    assert refs and all(r == {"name": DEFAULT_SECRET, "key": "pg-pass"} for r in refs.values())


def test_no_template_asks_the_cluster_or_chance() -> None:
    """`lookup` answers only with a cluster, and a random value differs at every render."""
    for template in (CHART_DIR / "templates").rglob("*"):
        if template.is_file():
            code = re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", template.read_text(), flags=re.S)
            found = re.findall(r"\b(lookup|rand\w+|uuidv4|genPrivateKey|genCA)\b", code)
            assert not found, (template.name, found)


def test_make_deploy_creates_the_default_secret_once_and_never_overwrites() -> None:
    from tests.charts.test_versions import _make_dry_run

    lines = _make_dry_run("deploy")
    creates = [line for line in lines if "create secret generic" in line]
    # The database password and the payload keys (issue 31), each made once.
    assert len(creates) == 2
    for create, secret in zip(creates, (DEFAULT_SECRET, f"{RELEASE}-payload-keys"), strict=True):
        # Only when it is missing: kubectl get ... || kubectl create ...
        assert "get secret" in create and "||" in create
        assert create.index("get secret") < create.index("||") < create.index("create secret")
        assert secret in create.replace("$(RELEASE)", RELEASE)
        deploy = lines.index(create)
        assert any("helm upgrade --install" in line for line in lines[deploy + 1 :])
