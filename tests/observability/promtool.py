"""Prometheus's binaries for the tests: installed from Debian when missing (CI runs as
root), or a loud skip naming the reason when that is impossible."""

from __future__ import annotations

import shutil

import pytest

from observability.prometheus import NotInstalled, ensure_installed


def prometheus_binary() -> str:
    try:
        return ensure_installed()
    except NotInstalled as err:
        pytest.skip(f"PROMETHEUS NOT AVAILABLE, RULE/DASHBOARD CHECKS NOT RUN: {err}")


def promtool_binary() -> str:
    prometheus_binary()
    found = shutil.which("promtool")
    assert found is not None, "Debian's prometheus package ships promtool"
    return found
