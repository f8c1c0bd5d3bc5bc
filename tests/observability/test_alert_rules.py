"""The alert rules load, and fire (or stay silent) as their unit tests say."""

from __future__ import annotations

import subprocess
from pathlib import Path

from observability.prometheus import RULES_FILE
from tests.observability.promtool import promtool_binary

RULE_TESTS = Path(__file__).parent / "orderflow-alerts.test.yaml"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool_binary(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULE_TESTS.parent,
    )


def test_rules_file_is_valid() -> None:
    result = _promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_unit_tests_pass() -> None:
    result = _promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test() -> None:
    rules = RULES_FILE.read_text()
    tests = RULE_TESTS.read_text()
    alerts = [line.split(":", 1)[1].strip() for line in rules.splitlines() if "- alert:" in line]
    assert alerts
    untested = [a for a in alerts if f"alertname: {a}" not in tests]
    assert not untested, f"alerts without a promtool test: {untested}"
