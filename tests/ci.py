"""On CI (CI=true) a test that cannot run here fails instead of skipping: a CI run with
it skipped would be green with nothing tested. Elsewhere it is skipped with the reason.
Used by the container tests (podman) and the report-page test (chromium)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest


def on_ci(environ: Mapping[str, str] | None = None) -> bool:
    """CI=true (or 1/yes), as CI services set it."""
    env = os.environ if environ is None else environ
    return env.get("CI", "").strip().lower() in {"true", "1", "yes"}


def skip_or_fail(reason: str | None, ci: bool) -> None:
    """Skip with ``reason`` (what this machine lacks); on CI fail with it instead.
    None: nothing is missing, the test runs."""
    if reason is None:
        return
    if ci:
        pytest.fail(f"CI=true, so this fails instead of skipping: {reason}", pytrace=False)
    pytest.skip(reason)
