"""`make k8s-load` against a rendered release, with kubectl answered from the render:
it goes through the KEDA HTTP interceptor when the release scales the API to zero,
follows the release's namespace, name and token Secret, stops waiting when the Job
fails, and copies the report out of the pod."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from loadtest import k8s_load
from orderflow.settings import REPO_ROOT
from tests.charts.chart import KUBE_VERSION, Rendered, load_values, merge_values, render

SCALE_TO_ZERO = merge_values(
    load_values(REPO_ROOT / "k8s" / "kind-values.yaml"),
    load_values(REPO_ROOT / "k8s" / "scale-to-zero-values.yaml"),
)


class FakeKubectl:
    """kubectl answered from a rendered release, and a Job that goes through `states`."""

    def __init__(self, rendered: Rendered, states: list[str | None], ended: bool) -> None:
        self.rendered = rendered
        self.states = states
        self.ended = ended
        self.calls: list[tuple[str, ...]] = []
        self.applied: list[Any] = []

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        self.calls.append(args)
        ns_args = args[2:] if args[:1] == ("-n",) else args
        verb, *rest = ns_args
        if verb == "get" and rest[0] == "deployment":
            selector = dict(kv.split("=") for kv in rest[rest.index("-l") + 1].split(","))
            items = [
                d
                for d in self.rendered.kinds("Deployment")
                if selector.items() <= d["metadata"]["labels"].items()
            ]
            return json.dumps({"items": items})
        if verb == "get" and rest[0] == "service":
            try:
                return json.dumps(self.rendered.get("Service", rest[1]))
            except KeyError:
                if check:
                    raise
                return ""
        if verb == "get" and rest[0] == "job":
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            conditions = [{"type": state, "status": "True"}] if state else []
            return json.dumps({"status": {"conditions": conditions}})
        if verb == "get" and rest[0] == "pods":
            return json.dumps(
                {"items": [{"metadata": {"name": "load-1"}, "status": {"phase": "Running"}}]}
            )
        if verb == "exec" and "cat" in rest:
            return "0\n" if self.ended else ""
        if verb == "apply":
            assert stdin is not None
            self.applied.append(yaml.safe_load(stdin))
        return ""


def discover(rendered: Rendered, namespace: str, release: str) -> k8s_load.Release:
    return k8s_load.discover(namespace, release, FakeKubectl(rendered, [None], True))


def test_scale_to_zero_goes_through_the_interceptor() -> None:
    rendered = render(SCALE_TO_ZERO)
    found = discover(rendered, "orderflow", "orderflow")
    assert found.through_interceptor
    proxy = rendered.get("Service", "orderflow-functions-proxy")
    assert found.target_url == (
        f"http://orderflow-functions-proxy.orderflow.svc.cluster.local:{proxy['spec']['ports'][0]['port']}"
    )
    # The interceptor routes by Host: the URL's host is one the HTTPScaledObject lists.
    (httpso,) = rendered.kinds("HTTPScaledObject")
    host = found.target_url.split("//")[1].split(":")[0]
    assert host in httpso["spec"]["hosts"]


def test_without_it_the_functions_service_is_the_target() -> None:
    found = discover(render({}), "orderflow", "orderflow")
    assert not found.through_interceptor
    assert found.target_url == "http://orderflow-functions.orderflow.svc.cluster.local:8000"


@pytest.mark.parametrize(
    ("values", "secret"),
    [
        ({}, None),
        ({"apiToken": {"value": "t"}}, ("shop-orderflow-api-token", "api-token")),
        ({"apiToken": {"existingSecret": "mine", "secretKey": "k"}}, ("mine", "k")),
    ],
)
def test_release_namespace_and_token_secret_follow_the_release(
    values: dict[str, Any], secret: tuple[str, str] | None
) -> None:
    rendered = render(values, release="shop", namespace="payments")
    found = discover(rendered, "payments", "shop")
    assert found.namespace == "payments" and found.token_secret == secret
    assert found.target_url == "http://shop-orderflow-functions.payments.svc.cluster.local:8000"
    job = k8s_load.job_manifest(found, rate=10, duration=120)
    kubernetes_validate.validate(job, KUBE_VERSION, strict=True)
    assert job["metadata"]["namespace"] == "payments"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["TARGET_URL"]["value"] == found.target_url
    assert env["RATE"]["value"] == "10" and env["DURATION"]["value"] == "120"
    if secret is None:
        assert "API_TOKEN" not in env
    else:
        ref = env["API_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == secret


def test_the_job_writes_its_report_where_it_is_copied_from() -> None:
    job = k8s_load.job_manifest(discover(render({}), "orderflow", "orderflow"), 5, 60)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 60 + k8s_load.DEADLINE_MARGIN_SECONDS
    (container,) = spec["template"]["spec"]["containers"]
    script = container["command"][2]
    locust = script.split("status=$?")[0].replace("\\\n", " ")
    words = shlex.split(locust)
    assert words[:4] == ["locust", "-f", "loadtest/locustfile.py", "--headless"]
    assert words[words.index("--report-dir") + 1] == k8s_load.REPORT_IN_POD
    assert words[words.index("--html") + 1] == f"{k8s_load.REPORT_IN_POD}/locust.html"
    for var in ("TARGET_URL", "RATE", "DURATION"):
        assert f'"${var}"' in script
    # The report lives on the emptyDir, which stays until the pod exits after the copy.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts and k8s_load.REPORT_IN_POD.startswith("/tmp/")
    assert f"{k8s_load.REPORT_IN_POD}/.collected" in script and "$COLLECT_SECONDS" in script


def test_a_failed_job_ends_the_wait_at_once() -> None:
    """The old `kubectl wait --for=condition=complete` sat out its 30 minutes here."""
    fake = FakeKubectl(render({}), [None, "Failed"], ended=False)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    state, pod = k8s_load.wait_for_locust(
        "orderflow", 1800, fake, clock=lambda: now[0], sleep=sleep
    )
    assert (state, pod) == ("Failed", None) and now[0] < 10


def test_a_run_copies_the_report_and_reports_the_outcome(tmp_path: Path) -> None:
    fake = FakeKubectl(render(SCALE_TO_ZERO), [None, "Complete"], ended=True)
    report = tmp_path / "reports" / "k8s-load"
    argv = ["--namespace", "orderflow", "--release", "orderflow", "--report-dir", str(report)]
    assert k8s_load.main([*argv, "--rate", "3", "--duration", "30"], run=fake) == 0
    (job,) = fake.applied
    assert "proxy" in job["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"]
    verbs = [c[2] for c in fake.calls if c[:1] == ("-n",)]
    assert verbs.index("logs") < verbs.index("cp") < verbs.index("exec", verbs.index("cp"))
    (cp,) = [c for c in fake.calls if "cp" in c]
    assert cp[-2:] == (f"load-1:{k8s_load.REPORT_IN_POD}", str(report))
    assert report.parent.is_dir()


def test_a_failed_run_exits_non_zero() -> None:
    fake = FakeKubectl(render({}), ["Failed"], ended=False)
    argv = ["--namespace", "orderflow", "--release", "orderflow", "--report-dir", "/nonexistent"]
    assert k8s_load.main(argv, run=fake) == 1
    assert not [c for c in fake.calls if "cp" in c]
