"""The API, both workers, the migrations Job and the helm-test pod as real containers.

Each runs from the image the Dockerfile builds, with the rendered chart's command,
environment, user, read-only root, dropped capabilities, limits and emptyDir mounts
(tests/containers/podman.py), against the test session's Temporal and PostgreSQL.
Changed, and only through variables the chart sets: service addresses and the ports
the processes listen on (all containers share the host's network here).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from orderflow.devstack.launcher import free_port
from orderflow.migrate import ensure_database
from tests.charts.chart import RELEASE, Obj, Rendered
from tests.charts.test_contract import APP_PORT_SETTING
from tests.containers.conftest import only_container, resolved_env, wait_http
from tests.containers.podman import Container, podman, run_args, run_to_completion

pytestmark = pytest.mark.containers


@dataclass
class AppPod:
    workload: str
    spec: Obj
    container: Obj
    running: Container
    port: int  # where the process listens on this host

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def ports() -> dict[str, str]:
    return {setting: str(free_port()) for setting in APP_PORT_SETTING.values()}


@pytest.fixture(scope="module")
def app_pods(
    app_image: str,
    rendered: Rendered,
    postgres_dsn: str,
    temporal_address: str,
    ports: dict[str, str],
    containers: list[Container],
) -> dict[str, AppPod]:
    overrides = {"TEMPORAL_ADDRESS": temporal_address, "DATABASE_URL": postgres_dsn, **ports}
    pods: dict[str, AppPod] = {}
    for name, port_setting in APP_PORT_SETTING.items():
        spec, container = only_container(rendered, name)
        env = resolved_env(rendered, container, overrides)
        running = Container.start(name, run_args(spec, container, env))
        containers.append(running)
        pods[name] = AppPod(name, spec, container, running, int(ports[port_setting]))
    return pods


@pytest.mark.parametrize("name", list(APP_PORT_SETTING))
def test_probes_answer(app_pods: dict[str, AppPod], name: str) -> None:
    pod = app_pods[name]
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        # The probe's named port is the one the process listens on (tests/charts checks
        # that for the rendered values); here that port was moved to pod.port.
        probe = pod.container[kind]["httpGet"]
        assert wait_http(pod.running, pod.url(probe["path"])).status_code == 200
    # Readiness is the process's own state; whether it reaches its dependencies, here
    # the session's Temporal and PostgreSQL, is /dependencies (orderflow/health.py).
    deps = httpx.get(pod.url("/dependencies"), timeout=5).json()["dependencies"]
    assert deps["temporal"] == deps["database"] == "ok", deps


@pytest.mark.parametrize("name", list(APP_PORT_SETTING))
def test_container_runs_as_the_chart_says(app_pods: dict[str, AppPod], name: str) -> None:
    """What the kernel says of PID 1, so a translation left out cannot pass unseen."""
    pod = app_pods[name]
    wait_http(pod.running, pod.url("/healthz"))
    sec = {**pod.spec["securityContext"], **pod.container["securityContext"]}
    status = dict(
        line.split(":\t", 1)
        for line in podman("exec", pod.running.name, "cat", "/proc/1/status").splitlines()
        if ":\t" in line
    )
    uids, gids = status["Uid"].split(), status["Gid"].split()
    assert set(uids) == {str(sec["runAsUser"])} and set(gids) == {str(sec["runAsGroup"])}
    assert str(sec["fsGroup"]) in status["Groups"].split()
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == 0  # drop: [ALL]
    assert status["NoNewPrivs"].strip() == "1"  # allowPrivilegeEscalation: false
    assert status["Seccomp"].strip() == "2"  # a filter: RuntimeDefault
    probe = podman("exec", pod.running.name, "sh", "-c", "touch /app/x /opt/x 2>&1", check=False)
    assert probe.count("Read-only file system") == 2, probe
    podman("exec", pod.running.name, "touch", "/tmp/written")  # the emptyDir


def test_image_healthcheck_passes(app_pods: dict[str, AppPod]) -> None:
    """The Dockerfile's HEALTHCHECK (for plain Docker) works under the chart's settings;
    podman here cannot schedule it (no systemd), so it is run on demand."""
    pod = app_pods[f"{RELEASE}-functions"]
    wait_http(pod.running, pod.url("/healthz"))
    assert podman("healthcheck", "run", pod.running.name).strip() in ("", "healthy")


def test_helm_test_pod_completes_an_order(
    app_image: str, rendered: Rendered, app_pods: dict[str, AppPod]
) -> None:
    for pod in app_pods.values():
        wait_http(pod.running, pod.url("/readyz"))
    spec, smoke = only_container(rendered, f"{RELEASE}-smoke")
    api = app_pods[f"{RELEASE}-functions"].url("")
    env = resolved_env(rendered, smoke, {"API_BASE_URL": api})
    result = run_to_completion(run_args(spec, smoke, env), timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke order completed" in result.stdout


@pytest.fixture
def fresh_database(postgres_dsn: str) -> Iterator[str]:
    dsn = postgres_dsn.rsplit("/", 1)[0] + f"/containers_{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_database(dsn))
    yield dsn


def test_migrations_job_applies_once(
    app_image: str, rendered: Rendered, fresh_database: str
) -> None:
    spec, job = only_container(rendered, f"{RELEASE}-migrations")
    env = resolved_env(rendered, job, {"DATABASE_URL": fresh_database})
    applied = []
    for _ in range(2):  # the hook runs on every install and upgrade
        result = run_to_completion(run_args(spec, job, env), timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        applied.append('"applied": []' in result.stdout)
    assert applied == [False, True], "the first run applies the migrations, the second none"


def test_sigterm_stops_each_within_its_grace_period(
    rendered: Rendered, app_pods: dict[str, AppPod]
) -> None:
    """Last in the module: it stops the containers the tests above share."""
    for pod in app_pods.values():
        wait_http(pod.running, pod.url("/readyz"))
    for name, pod in app_pods.items():
        grace = int(pod.spec["terminationGracePeriodSeconds"])
        code, took = pod.running.stop(grace)
        logs = pod.running.logs()
        print(f"{name}: exit {code} {took:.1f} s after SIGTERM (grace {grace} s)")
        assert took < grace, f"{name} needed SIGKILL ({took:.1f} s):\n{logs}"
        if name.endswith("functions"):
            # uvicorn drains, then re-raises SIGTERM: 143 is how a pod reports it.
            assert code in (0, 128 + signal.SIGTERM), logs
            assert "Application shutdown complete" in logs
        else:
            assert code == 0, logs
            assert "worker stopped" in logs
