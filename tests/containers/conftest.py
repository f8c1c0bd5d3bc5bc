"""The image built for real, and the chart's containers run from it (make test-containers).

Needs rootful podman and the stand-in images of k8s/containers/setup.sh (the make
target runs it first). Where podman cannot run a container every test here is
skipped with the reason, except on CI (CI=true), where each fails with it; where it
can, nothing is skipped.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from orderflow.settings import REPO_ROOT
from tests.charts.chart import RELEASE, Obj, Rendered, pod_spec, render_set
from tests.charts.test_contract import container_env
from tests.ci import on_ci, skip_or_fail
from tests.conftest import TEST_PAYLOAD_KEYS
from tests.containers.podman import PYTHON_BASE, Container, cannot_run, podman

STARTUP_SECONDS = 90.0


@pytest.fixture(scope="session")
def podman_ready() -> None:
    skip_or_fail(cannot_run(), on_ci())


@pytest.fixture(scope="session")
def rendered() -> Rendered:
    return render_set("default")


@pytest.fixture(scope="session")
def app_image(podman_ready: None, rendered: Rendered) -> str:
    """The real Dockerfile built on the stand-in Python base, tagged as the chart names
    the image (as `kind load` would make it available); its runtime stage only."""
    image: str = pod_spec(rendered.get("Deployment", "orderflow-functions"))["containers"][0][
        "image"
    ]
    started = time.monotonic()
    podman(
        "build",
        "--pull=never",
        "--network=host",
        "--format=docker",  # keeps the HEALTHCHECK (OCI images have none)
        f"--build-arg=BASE_IMAGE={PYTHON_BASE}",
        "--target=runtime",
        f"--tag={image}",
        str(REPO_ROOT),
        timeout=600,
    )
    print(f"built {image} on {PYTHON_BASE} in {time.monotonic() - started:.0f} s")
    return image


def workload(rendered: Rendered, name: str) -> Obj:
    for kind in ("Deployment", "StatefulSet", "Job", "Pod"):
        try:
            return rendered.get(kind, name)
        except KeyError:
            continue
    raise KeyError(name)


def only_container(rendered: Rendered, name: str) -> tuple[Obj, Obj]:
    """(pod spec, its one container) of the workload called `name`."""
    spec = pod_spec(workload(rendered, name))
    (container,) = spec["containers"]
    return spec, container


# Secrets the chart reads but never renders, as `make deploy` creates them: the built-in
# PostgreSQL's password (GitOps-safe, see tests/charts/test_gitops.py).
USER_SECRETS = {
    f"{RELEASE}-postgres-password": {"password": "container-test-password"},
    f"{RELEASE}-payload-keys": {"keys": TEST_PAYLOAD_KEYS},
}


def secret_value(rendered: Rendered, ref: Obj) -> str:
    key = ref["secretKeyRef"]
    if key["name"] in USER_SECRETS:
        return USER_SECRETS[key["name"]][key["key"]]
    data = rendered.get("Secret", key["name"])["data"][key["key"]]
    return base64.b64decode(data).decode()


def resolved_env(rendered: Rendered, container: Obj, overrides: dict[str, str]) -> dict[str, str]:
    """The rendered environment, Secrets resolved from the rendered Secrets, with
    `overrides` applied; each must replace a variable the chart really sets, so
    nothing reaches a container behind the chart's back."""
    env: dict[str, Any] = container_env(rendered, container)
    missing = set(overrides) - set(env)
    assert not missing, f"adapting variables the chart does not set: {missing}"
    out = {k: v if isinstance(v, str) else secret_value(rendered, v) for k, v in env.items()}
    return {**out, **overrides}


def wait_until(
    container: Container, check: Callable[[], bool], what: str, within: float = STARTUP_SECONDS
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not container.running():
            raise AssertionError(f"{container.name} exited:\n{container.logs()}")
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"{container.name}: {what} not within {within} s\n{container.logs()}")


def wait_http(container: Container, url: str, want: int = 200) -> httpx.Response:
    answers: list[httpx.Response] = []

    def answered() -> bool:
        try:
            answers.append(httpx.get(url, timeout=3))
        except httpx.HTTPError:
            return False
        return answers[-1].status_code == want

    wait_until(container, answered, f"{url} answering {want}")
    return answers[-1]


@pytest.fixture(scope="session")
def containers() -> Iterator[list[Container]]:
    """Every container a test starts is appended here and removed at the end."""
    started: list[Container] = []
    yield started
    for container in started:
        container.remove()
