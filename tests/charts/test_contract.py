"""The chart and the code agree: env vars, ports, probe paths, commands, scrape
targets, dashboards and alert rules, the image's layout."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr
from starlette.routing import Match

from functions.__main__ import GRACEFUL_SHUTDOWN_SECONDS
from functions.main import app as functions_app
from orderflow.codec_server import create_app as create_codec_server
from orderflow.devstack.temporal import SQLITE_TUNING, TEMPORAL_DEV_TUNING
from orderflow.payload_codec import Keyring
from orderflow.settings import REPO_ROOT, Settings
from tests.charts.chart import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    VALUE_SETS,
    Obj,
    Rendered,
    is_app_image,
    pod_metadata,
    pod_spec,
    render_set,
)
from workers.health import WorkerHealth

SETS = list(VALUE_SETS)
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}
# Read by the OpenTelemetry SDK itself (its standard variables), not by Settings.
OTEL_SDK_ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SERVICE_NAME",
}
# Read by asyncpg itself (libpq's variable) when DATABASE_URL carries no password: how
# the built-in PostgreSQL's password reaches the processes.
LIBPQ_ENV = {"PGPASSWORD"}
ENTRYPOINTS = {
    f"{RELEASE}-functions": ["python", "-m", "functions"],
    f"{RELEASE}-order-worker": ["python", "-m", "workers.order"],
    f"{RELEASE}-shipping-worker": ["python", "-m", "workers.shipping"],
    f"{RELEASE}-migrations": ["python", "-m", "orderflow.migrate"],
    f"{RELEASE}-smoke": ["python", "-m", "orderflow.smoke"],
    f"{RELEASE}-codec-server": ["python", "-m", "orderflow.codec_server"],
}
# Which HTTP app each long-running workload serves, and the setting that names its port.
APP_PORT_SETTING = {
    f"{RELEASE}-functions": "API_PORT",
    f"{RELEASE}-order-worker": "ORDER_WORKER_HTTP_PORT",
    f"{RELEASE}-shipping-worker": "SHIPPING_WORKER_HTTP_PORT",
}


def serves_get(app: Any, path: str) -> bool:
    """The app's own router fully matches GET path (as a probe or a scrape sends it)."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)


FUNCTIONS_APP = functions_app
CODEC_SERVER = f"{RELEASE}-codec-server"
CODEC_SERVER_APP = create_codec_server(
    Settings(payload_keys=SecretStr(f"k:{Keyring.new_key()}"), codec_server_token=SecretStr("t"))
)
WORKER_APP = WorkerHealth(cast(Any, None), cast(Any, None)).app()


def app_containers(rendered: Rendered) -> list[tuple[Obj, Obj]]:
    return [
        (w, c) for w in rendered.workloads() for c in pod_spec(w)["containers"] if is_app_image(c)
    ]


def container_env(rendered: Rendered, container: Obj) -> dict[str, Any]:
    """What the process sees: envFrom ConfigMaps, then env (literal or a secretKeyRef)."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        env.update(rendered.get("ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", var.get("valueFrom"))
    return env


@pytest.mark.parametrize("name", SETS)
def test_every_env_var_is_a_setting(name: str) -> None:
    rendered = render_set(name)
    for workload, container in app_containers(rendered):
        unknown = set(container_env(rendered, container)) - SETTINGS_ENV - OTEL_SDK_ENV - LIBPQ_ENV
        assert not unknown, f"{workload['metadata']['name']} sets {unknown}"


@pytest.mark.parametrize("name", SETS)
def test_env_values_parse_as_settings(name: str) -> None:
    rendered = render_set(name)
    for _workload, container in app_containers(rendered):
        env = container_env(rendered, container)
        literal = {k.lower(): v for k, v in env.items() if isinstance(v, str) and k in SETTINGS_ENV}
        # Raises on a value the process would refuse at startup (a port "abc", FLAKY "yes").
        settings = Settings.model_validate(literal)
        assert set(literal) <= settings.model_fields_set  # (the environment may add more)


@pytest.mark.parametrize("name", SETS)
def test_secrets_come_from_secrets(name: str) -> None:
    rendered = render_set(name)
    secret_names = {s["metadata"]["name"] for s in rendered.kinds("Secret")}
    values = rendered.values
    # Secrets the chart reads but the user makes: the built-in database's password
    # (never rendered: test_gitops.py), and every existingSecret.
    builtin = values["postgres"]["mode"] == "builtin"
    external = {
        values["postgres"]["builtin"]["existingSecret"]
        or (builtin and f"{RELEASE}-postgres-password"),
        values["postgres"]["external"]["existingSecret"],
        values["apiToken"]["existingSecret"],
        values["temporal"]["external"]["apiKey"]["existingSecret"],
        values["payloadEncryption"]["existingSecret"] or f"{RELEASE}-payload-keys",
        values["codecServer"]["token"]["existingSecret"],
    } - {""}
    for workload, container in app_containers(rendered):
        env = container_env(rendered, container)
        where = workload["metadata"]["name"]
        if isinstance(env.get("DATABASE_URL"), str):  # the built-in database: no password in it
            assert urlsplit(env["DATABASE_URL"]).password is None, where
            assert "secretKeyRef" in env["PGPASSWORD"], where
        for var in (
            *("DATABASE_URL", "PGPASSWORD", "API_TOKEN", "TEMPORAL_API_KEY"),
            *("PAYLOAD_KEYS", "CODEC_SERVER_TOKEN"),
        ):
            value = env.get(var)
            if value is None or (var == "DATABASE_URL" and isinstance(value, str)):
                continue  # not set, or the built-in database's URL (checked above)
            ref = value["secretKeyRef"]
            assert ref["name"] in secret_names | external, (where, var)
        if where.endswith(("-functions", "-worker", "-codec-server")):  # they hold the keys
            assert "secretKeyRef" in env["PAYLOAD_KEYS"], where
        if workload["kind"] != "Pod" and not where.endswith("-codec-server"):
            assert "DATABASE_URL" in env  # the helm test pod talks to the API only
    token_set = bool(values["apiToken"]["value"] or values["apiToken"]["existingSecret"])
    api_env = container_env(rendered, _container(rendered, f"{RELEASE}-functions"))
    assert ("API_TOKEN" in api_env) == token_set


def test_builtin_database_url_points_at_the_builtin_postgres() -> None:
    rendered = render_set("default")
    service = rendered.get("Service", f"{RELEASE}-postgres")
    statefulset = rendered.get("StatefulSet", f"{RELEASE}-postgres")
    pg_env = {e["name"]: e for e in pod_spec(statefulset)["containers"][0]["env"]}
    server_ref = pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert server_ref == {"name": f"{RELEASE}-postgres-password", "key": "password"}
    for workload, container in app_containers(rendered):
        env = container_env(rendered, container)
        if "DATABASE_URL" not in env:
            continue
        url = urlsplit(env["DATABASE_URL"])
        assert url.hostname == service["metadata"]["name"], workload["metadata"]["name"]
        assert url.port == service["spec"]["ports"][0]["port"] == 5432
        assert url.username == pg_env["POSTGRES_USER"]["value"]
        assert url.path == f"/{pg_env['POSTGRES_DB']['value']}"
        # The processes log in with the password the server was initialised with.
        assert env["PGPASSWORD"]["secretKeyRef"] == server_ref


def _container(rendered: Rendered, workload_name: str) -> Obj:
    for workload, container in app_containers(rendered):
        if workload["metadata"]["name"] == workload_name:
            return container
    raise KeyError(workload_name)


@pytest.mark.parametrize("name", SETS)
def test_commands_are_the_entrypoints(name: str) -> None:
    rendered = render_set(name)
    for workload, container in app_containers(rendered):
        command = ENTRYPOINTS[workload["metadata"]["name"]]
        assert container["command"] == command and "args" not in container
        module = command[2]
        spec = importlib.util.find_spec(module)
        assert spec is not None, module
        if spec.submodule_search_locations:  # a package runs its __main__
            assert importlib.util.find_spec(f"{module}.__main__") is not None, module


@pytest.mark.parametrize("name", SETS)
def test_probes_hit_routes_on_the_port_the_process_listens_on(name: str) -> None:
    rendered = render_set(name)
    for workload, container in app_containers(rendered):
        wname = workload["metadata"]["name"]
        if wname == CODEC_SERVER:  # no dependencies to be ready for: /healthz throughout
            listen = int(container_env(rendered, container)["CODEC_SERVER_PORT"])
            assert container["ports"] == [
                {"name": "http", "containerPort": listen, "protocol": "TCP"}
            ]
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert serves_get(CODEC_SERVER_APP, container[kind]["httpGet"]["path"])
                assert container[kind]["httpGet"]["port"] == "http"
            continue
        if wname not in APP_PORT_SETTING:
            assert "livenessProbe" not in container  # run-to-completion pods
            continue
        app = FUNCTIONS_APP if wname.endswith("functions") else WORKER_APP
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        listen = int(container_env(rendered, container)[APP_PORT_SETTING[wname]])
        assert list(ports.values()) == [listen]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container[kind]["httpGet"]
            assert serves_get(app, probe["path"]), (wname, kind, probe["path"])
            assert ports[probe["port"]] == listen
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("name", SETS)
def test_service_ports_match_container_ports(name: str) -> None:
    rendered = render_set(name)
    for service in rendered.kinds("Service"):
        if service["spec"].get("type") == "ExternalName":  # the KEDA HTTP interceptor's name
            continue
        selector = service["spec"]["selector"]
        pods = [
            w
            for w in rendered.workloads()
            if w["kind"] in {"Deployment", "StatefulSet"}
            and selector.items() <= pod_metadata(w)["labels"].items()
        ]
        assert len(pods) == 1, service["metadata"]["name"]
        container_ports = {
            p["name"]: p["containerPort"]
            for c in pod_spec(pods[0])["containers"]
            for p in c["ports"]
        }
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert target in container_ports, (service["metadata"]["name"], target)
            # Same number on both sides: one port to remember per component.
            assert port["port"] == container_ports[target], service["metadata"]["name"]


@pytest.mark.parametrize("name", SETS)
def test_scrape_targets_are_the_ports_that_serve_metrics(name: str) -> None:
    rendered = render_set(name)
    path = rendered.values["metrics"]["path"]
    for workload in rendered.workloads():
        annotations = pod_metadata(workload).get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        assert annotations["prometheus.io/path"] == path
        wname = workload["metadata"]["name"]
        (container,) = pod_spec(workload)["containers"]
        port = int(annotations["prometheus.io/port"])
        if wname in APP_PORT_SETTING:
            # The app serves /metrics on its own HTTP port (the observability contract).
            assert port == int(container_env(rendered, container)[APP_PORT_SETTING[wname]])
        else:
            assert wname == f"{RELEASE}-temporal"
            args = container["args"]
            assert port == int(args[args.index("--metrics-port") + 1])
    for monitor in rendered.kinds("ServiceMonitor"):
        service = rendered.get("Service", monitor["metadata"]["name"])
        (endpoint,) = monitor["spec"]["endpoints"]
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
        assert port["targetPort"] in {"http", "metrics"} and endpoint["path"] == path


def test_annotations_cover_every_long_running_own_component() -> None:
    rendered = render_set("default")
    scraped = {
        w["metadata"]["name"]
        for w in rendered.workloads()
        if pod_metadata(w).get("annotations", {}).get("prometheus.io/scrape") == "true"
    }
    assert scraped == set(APP_PORT_SETTING) | {f"{RELEASE}-temporal"}
    monitored = {m["metadata"]["name"] for m in render_set("monitoring").kinds("ServiceMonitor")}
    assert monitored == scraped


@pytest.mark.parametrize("name", ["default", "monitoring"])
def test_dashboards_in_configmaps_are_the_committed_files(name: str) -> None:
    rendered = render_set(name)
    committed = {
        p.name: json.loads(p.read_text()) for p in (CHART_DIR / "dashboards").glob("*.json")
    }
    assert committed, "no dashboards committed"
    shipped: dict[str, Any] = {}
    for cm in rendered.kinds("ConfigMap"):
        if cm["metadata"]["labels"].get("grafana_dashboard") == "1":
            for key, text in cm["data"].items():
                shipped[key] = json.loads(text)
    assert shipped == committed
    for dashboard in committed.values():
        assert dashboard["uid"] and dashboard["title"]


def test_prometheus_rule_is_the_committed_rules_file() -> None:
    (rule,) = render_set("monitoring").kinds("PrometheusRule")
    committed = yaml.safe_load((CHART_DIR / "rules" / "orderflow-alerts.yaml").read_text())
    assert rule["spec"] == committed


@pytest.mark.parametrize("name", SETS)
def test_workers_outlive_their_drain(name: str) -> None:
    rendered = render_set(name)
    grace = float(rendered.config_data()["WORKER_SHUTDOWN_GRACE_SECONDS"])
    for worker in ("order-worker", "shipping-worker"):
        deployment = rendered.get("Deployment", f"{RELEASE}-{worker}")
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] > grace


@pytest.mark.parametrize("name", SETS)
def test_api_outlives_its_drain(name: str) -> None:
    """uvicorn's graceful shutdown (which outlasts a status long poll) ends before the
    kubelet's SIGKILL, with time to spare for the process's own exit."""
    deployment = render_set(name).get("Deployment", f"{RELEASE}-functions")
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert grace >= GRACEFUL_SHUTDOWN_SECONDS + 5


@pytest.mark.parametrize("name", SETS)
def test_keda_scales_each_worker_on_its_own_task_queue(name: str) -> None:
    rendered = render_set(name)
    data = rendered.config_data()
    queues = {
        f"{RELEASE}-order-worker": data["ORDER_TASK_QUEUE"],
        f"{RELEASE}-shipping-worker": data["SHIPPING_TASK_QUEUE"],
    }
    for scaled in rendered.kinds("ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]["name"]
        meta = scaled["spec"]["triggers"][0]["metadata"]
        assert meta["taskQueue"] == queues[target]
        # The same Temporal as the workers', named so that KEDA's namespace resolves it:
        # the short Service name qualified with the release's namespace, or the given address.
        host, _, port = data["TEMPORAL_ADDRESS"].rpartition(":")
        if "." not in host:
            host = f"{host}.{NAMESPACE}.svc.cluster.local"
        assert meta["endpoint"] == f"{host}:{port}"
        assert meta["namespace"] == data["TEMPORAL_NAMESPACE"]


@pytest.mark.parametrize("name", SETS)
def test_network_policies_admit_exactly_the_clients(name: str) -> None:
    rendered = render_set(name)
    policies = {p["metadata"]["name"]: p for p in rendered.kinds("NetworkPolicy")}
    if not rendered.values["networkPolicy"]["enabled"]:
        assert not policies
        return
    clients = {
        "database-client": {"DATABASE_URL"},
        "temporal-client": {"TEMPORAL_ADDRESS"},
    }
    for workload, container in app_containers(rendered):
        env = container_env(rendered, container)
        labels = pod_metadata(workload)["labels"]
        for label, needs in clients.items():
            assert (labels.get(f"orderflow.io/{label}") == "true") == bool(needs & set(env)), (
                workload["metadata"]["name"],
                label,
            )
    if f"{RELEASE}-postgres" in policies:
        (rule,) = policies[f"{RELEASE}-postgres"]["spec"]["ingress"]
        (peer,) = rule["from"]
        assert peer["podSelector"]["matchLabels"]["orderflow.io/database-client"] == "true"
    # Every own pod is covered by some policy.
    for workload in rendered.workloads():
        labels = pod_metadata(workload)["labels"]
        assert any(
            p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
            for p in policies.values()
        ), workload["metadata"]["name"]


@pytest.mark.parametrize("name", SETS)
def test_every_container_is_hardened(name: str) -> None:
    for workload in render_set(name).workloads():
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] > 0
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"]:
            ctx = container["securityContext"]
            where = (workload["metadata"]["name"], container["name"])
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", where
            assert container["resources"]["requests"] and container["resources"]["limits"]
            if workload["kind"] in {"Deployment", "StatefulSet"}:
                assert "livenessProbe" in container and "readinessProbe" in container, where


@pytest.mark.parametrize("name", SETS)
def test_config_changes_roll_the_pods(name: str) -> None:
    rendered = render_set(name)
    for workload in rendered.workloads():
        if workload["kind"] == "Deployment" and any(
            is_app_image(c) for c in pod_spec(workload)["containers"]
        ):
            annotations = pod_metadata(workload)["annotations"]
            assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"])
            assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/secret"])


def test_config_checksum_follows_the_config() -> None:
    from tests.charts.chart import render

    base = render({})
    changed = render({"config": {"logLevel": "DEBUG"}})
    name = f"{RELEASE}-functions"
    checksum = [
        pod_metadata(r.get("Deployment", name))["annotations"]["checksum/config"]
        for r in (base, changed)
    ]
    assert checksum[0] != checksum[1]


def _dockerfile_stage(stage: str) -> list[str]:
    lines = (REPO_ROOT / "Dockerfile").read_text().splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("FROM "):
            inside = line.rstrip().endswith(f"AS {stage}")
        elif inside:
            out.append(line)
    return out


def test_image_matches_what_the_chart_expects() -> None:
    runtime = "\n".join(_dockerfile_stage("runtime"))
    chart_dir = render_set("default").config_data()["MIGRATIONS_DIR"]
    assert f"COPY migrations {chart_dir}" in runtime
    assert f"MIGRATIONS_DIR={chart_dir}" in runtime
    user = re.search(r"^USER (\d+):(\d+)$", runtime, re.M)
    assert user and int(user.group(1)) > 0
    assert (
        int(user.group(1))
        == pod_spec(render_set("default").get("Deployment", f"{RELEASE}-functions"))[
            "securityContext"
        ]["runAsUser"]
    )
    assert 'CMD ["python", "-m", "functions"]' in runtime
    # No compiler or build tool is installed into the final stage.
    assert "apt-get" not in runtime and "gcc" not in runtime
    # Every package the image installs is copied into the build stage.
    build = "\n".join(_dockerfile_stage("build"))
    for package in ("orderflow", "functions", "workers"):
        assert f"COPY {package} ./{package}" in build


def test_dev_temporal_is_tuned_as_make_run_tunes_it() -> None:
    rendered = render_set("default")
    deployment = next(
        w for w in rendered.workloads() if w["metadata"]["name"] == f"{RELEASE}-temporal"
    )
    args = pod_spec(deployment)["containers"][0]["args"]
    tuning = [*TEMPORAL_DEV_TUNING, *SQLITE_TUNING]
    pairs = list(itertools.pairwise(args))
    for flag, value in zip(tuning[::2], tuning[1::2], strict=True):
        assert (flag, value) in pairs, (flag, value, args)
