"""`make k8s-load`: the load-test Job (k8s/loadtest-job.yaml) against a release in a
cluster, its summary, and its report copied to the local reports/ directory.

    python -m loadtest.k8s_load --namespace orderflow --release orderflow \
        --rate 10 --duration 120 --report-dir reports/k8s-load-...

What depends on the release is read from the cluster, not assumed:

* the target: with the KEDA HTTP add-on (`functions.scaleToZero.mode: keda-http`) the
  release has the interceptor's proxy Service `<functions>-proxy`, and the load goes
  through it (`http://<functions>-proxy.<ns>.svc.cluster.local:<port>`, a Host the
  HTTPScaledObject routes): only traffic the interceptor sees wakes the API and keeps it
  awake. Otherwise the functions Service itself.
* the API token: the Secret and key the release's functions Deployment reads API_TOKEN
  from (`apiToken.value` or `apiToken.existingSecret`), none if it reads none.

Then it waits for locust to end or the Job to fail, whichever comes first (never for a
condition that cannot come), prints the Job's log, copies /tmp/report (report.html,
locust.html, summary.json, orders.json) out of the pod, lets the pod exit, and exits
non-zero unless the Job completed.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orderflow.settings import REPO_ROOT

JOB_FILE = REPO_ROOT / "k8s" / "loadtest-job.yaml"
JOB_NAME = "orderflow-load"
REPORT_IN_POD = "/tmp/report"
# How long the pod waits for the report to be copied once locust has ended.
COLLECT_SECONDS = 300
# Beyond DURATION: locust's start and stop, the copy, and slack. Kubernetes fails the Job
# after DURATION + this (activeDeadlineSeconds), so a hung run ends as a failure.
DEADLINE_MARGIN_SECONDS = 900

Obj = dict[str, Any]
Kubectl = Callable[..., str]


def say(message: str) -> None:
    print(f"==> k8s-load: {message}", flush=True)  # noqa: T201


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class Release:
    """What the Job needs to know about the release it loads."""

    namespace: str
    target_url: str
    through_interceptor: bool
    token_secret: tuple[str, str] | None  # (Secret name, key)


def target_url(namespace: str, functions: Obj, proxy: Obj | None) -> tuple[str, bool]:
    """The API's in-cluster URL, through the interceptor's proxy Service when there is one."""
    service = proxy if proxy is not None else functions
    name = service["metadata"]["name"]
    port = service["spec"]["ports"][0]["port"]
    return f"http://{name}.{namespace}.svc.cluster.local:{port}", proxy is not None


def token_secret(deployment: Obj) -> tuple[str, str] | None:
    """The Secret and key the functions container reads API_TOKEN from, if any."""
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if var["name"] == "API_TOKEN" and ref:
                return ref["name"], ref["key"]
    return None


def discover(namespace: str, release: str, run: Kubectl = kubectl) -> Release:
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component=functions"
    deployments = json.loads(
        run("-n", namespace, "get", "deployment", "-l", selector, "-o", "json")
    )
    if not deployments["items"]:
        raise RuntimeError(f"no functions Deployment of release {release} in {namespace}")
    deployment = deployments["items"][0]
    name = deployment["metadata"]["name"]
    functions = json.loads(run("-n", namespace, "get", "service", name, "-o", "json"))
    found = run("-n", namespace, "get", "service", f"{name}-proxy", "-o", "json", check=False)
    proxy = json.loads(found) if found.strip() else None
    url, through = target_url(namespace, functions, proxy)
    return Release(namespace, url, through, token_secret(deployment))


def job_manifest(release: Release, rate: float, duration: int) -> Obj:
    """k8s/loadtest-job.yaml with the release's namespace, target, token and the run's length."""
    job: Obj = copy.deepcopy(yaml.safe_load(JOB_FILE.read_text()))
    job["metadata"]["namespace"] = release.namespace
    job["spec"]["activeDeadlineSeconds"] = duration + DEADLINE_MARGIN_SECONDS
    (container,) = job["spec"]["template"]["spec"]["containers"]
    values = {
        "TARGET_URL": release.target_url,
        "RATE": f"{rate:g}",
        "DURATION": str(duration),
        "COLLECT_SECONDS": str(COLLECT_SECONDS),
    }
    env = []
    for var in container["env"]:
        if var["name"] in values:
            var = {"name": var["name"], "value": values[var["name"]]}
        elif var["name"] == "API_TOKEN":
            if release.token_secret is None:
                continue
            secret, key = release.token_secret
            var = {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        env.append(var)
    container["env"] = env
    return job


def job_state(namespace: str, run: Kubectl = kubectl) -> str | None:
    """'Complete' or 'Failed' once the Job has that condition, else None."""
    job = json.loads(run("-n", namespace, "get", "job", JOB_NAME, "-o", "json"))
    for condition in job.get("status", {}).get("conditions", []):
        if condition["type"] in {"Complete", "Failed"} and condition["status"] == "True":
            return str(condition["type"])
    return None


def job_pod(namespace: str, run: Kubectl = kubectl) -> str | None:
    pods = json.loads(
        run("-n", namespace, "get", "pods", "-l", f"job-name={JOB_NAME}", "-o", "json")
    )
    running = [p for p in pods["items"] if p.get("status", {}).get("phase") == "Running"]
    return str(running[0]["metadata"]["name"]) if running else None


def locust_ended(namespace: str, pod: str, run: Kubectl = kubectl) -> bool:
    out = run(
        "-n", namespace, "exec", pod, "-c", "locust", "--",
        "cat", f"{REPORT_IN_POD}/exit-code", check=False,
    )  # fmt: skip
    return out.strip().isdigit()


def wait_for_locust(
    namespace: str,
    timeout: float,
    run: Kubectl = kubectl,
    interval: float = 3.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, str | None]:
    """Until locust has ended in its pod ('ended', pod) or the Job failed ('Failed', None)
    or completed, or `timeout` passed ('timeout', None)."""
    deadline = clock() + timeout
    while clock() < deadline:
        state = job_state(namespace, run)
        if state is not None:
            return state, None
        pod = job_pod(namespace, run)
        if pod is not None and locust_ended(namespace, pod, run):
            return "ended", pod
        sleep(interval)
    return "timeout", None


def wait_for_job(
    namespace: str,
    timeout: float,
    run: Kubectl = kubectl,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    deadline = clock() + timeout
    while clock() < deadline:
        state = job_state(namespace, run)
        if state is not None:
            return state
        sleep(2)
    return None


def main(argv: list[str] | None = None, run: Kubectl = kubectl) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--release", required=True)
    parser.add_argument("--rate", type=float, default=5)
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--report-dir", type=Path, required=True)
    opts = parser.parse_args(argv)

    release = discover(opts.namespace, opts.release, run)
    via = "the KEDA HTTP interceptor" if release.through_interceptor else "the functions Service"
    say(f"target {release.target_url} ({via})")
    manifest = job_manifest(release, opts.rate, opts.duration)
    run("-n", opts.namespace, "delete", "job", JOB_NAME, "--ignore-not-found", "--wait")
    run("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    say(f"{opts.rate:g} orders/s for {opts.duration} s; waiting for locust to end")

    state, pod = wait_for_locust(opts.namespace, opts.duration + DEADLINE_MARGIN_SECONDS, run)
    print(run("-n", opts.namespace, "logs", f"job/{JOB_NAME}", check=False))  # noqa: T201
    if pod is not None:
        # kubectl cp creates the directory with the pod's files in it.
        opts.report_dir.parent.mkdir(parents=True, exist_ok=True)
        run(
            "-n",
            opts.namespace,
            "cp",
            "-c",
            "locust",
            f"{pod}:{REPORT_IN_POD}",
            str(opts.report_dir),
        )
        run(
            "-n",
            opts.namespace,
            "exec",
            pod,
            "-c",
            "locust",
            "--",
            "touch",
            f"{REPORT_IN_POD}/.collected",
        )
        say(f"report: {opts.report_dir}/report.html (summary.json, locust.html, orders.json)")
        state = wait_for_job(opts.namespace, 120, run) or "timeout"
    else:
        say("locust did not finish in its pod: no report to copy")
    say(f"Job {JOB_NAME}: {state}")
    return 0 if state == "Complete" else 1


if __name__ == "__main__":
    sys.exit(main())
