"""On CI (CI=true) `make test-containers` fails where podman cannot run, rather than
going green with every container test skipped (setup.sh, and tests/ci.py's helper,
which the report-page test uses too). Runs in `make test`: no podman needed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from orderflow.settings import REPO_ROOT
from tests.ci import on_ci, skip_or_fail

SETUP = REPO_ROOT / "k8s" / "containers" / "setup.sh"


def _setup_as_non_root(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """setup.sh where podman cannot run: a stand-in `id` says we are not root, the
    first thing the script checks, so it stops before touching anything."""
    fake_id = tmp_path / "id"
    fake_id.write_text("#!/bin/sh\necho 1000\n")
    fake_id.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = f"{tmp_path}:{env['PATH']}"
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        ["bash", str(SETUP)], capture_output=True, text=True, env=env, timeout=30, check=False
    )


def test_setup_skips_off_ci(tmp_path: Path) -> None:
    result = _setup_as_non_root(tmp_path, None)
    assert result.returncode == 0, result.stderr
    assert "SKIP: podman cannot run here: needs root" in result.stderr


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_setup_fails_on_ci(tmp_path: Path, ci: str) -> None:
    result = _setup_as_non_root(tmp_path, ci)
    assert result.returncode == 1, result.stderr
    assert "FAIL: podman cannot run here: needs root" in result.stderr


def test_ci_is_read_as_ci_services_set_it() -> None:
    assert on_ci({"CI": "true"}) and on_ci({"CI": "1"})
    assert not on_ci({}) and not on_ci({"CI": "false"}) and not on_ci({"CI": ""})


def test_the_tests_fail_on_ci_and_skip_elsewhere() -> None:
    skip_or_fail(None, ci=True)  # podman runs: nothing to say
    with pytest.raises(pytest.skip.Exception, match="podman is not installed"):
        skip_or_fail("podman is not installed", ci=False)
    with pytest.raises(pytest.fail.Exception, match=r"CI=true.*podman is not installed"):
        skip_or_fail("podman is not installed", ci=True)
