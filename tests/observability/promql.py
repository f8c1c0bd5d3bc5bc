"""Just enough PromQL reading for the tests: Grafana's variables, and metric names."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# What Grafana would put in for its built-in variables over a short test run.
# `namespace`: the one `make observe` and the test stack label their targets with.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "10m",
    "$__interval": "15s",
    "$namespace": "orderflow",
}

_KEYWORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
    "histogram_quantile", "absent", "absent_over_time", "label_replace", "label_join",
    "vector", "scalar", "time", "clamp_min", "clamp_max", "abs", "ceil", "floor", "round",
    "sum_over_time", "avg_over_time", "max_over_time", "min_over_time", "count_over_time",
    "le", "inf", "nan",
}  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_LABEL_MATCHERS = re.compile(r"\{[^}]*\}")
_DURATIONS = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (not functions, labels or keywords)."""
    text = _STRINGS.sub("", expr)
    text = _GROUPINGS.sub("", text)
    text = _LABEL_MATCHERS.sub("", text)
    text = _DURATIONS.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        rest = text[match.end() :].lstrip()
        if word in _KEYWORDS or rest.startswith("("):
            continue
        names.add(word)
    return names


def dashboard_queries(directory: Path) -> Iterator[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) of every target of every panel."""
    for path in sorted(directory.glob("*.json")):
        dash: dict[str, Any] = json.loads(path.read_text())
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                yield dash["uid"], panel["title"], target["expr"]


def rule_expressions(rules_text: str) -> Iterator[tuple[str, str]]:
    """(rule name, expr) of every recording and alerting rule in a rules file.

    Reads the file's regular shape (``- record:``/``- alert:`` then ``expr:`` as a
    one-liner or a ``|`` block), which tests/observability checks with promtool.
    """
    lines = rules_text.splitlines()
    name = None
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith(("- record:", "- alert:")):
            name = stripped.split(":", 1)[1].strip()
        elif stripped.startswith("expr:") and name:
            value = stripped[len("expr:") :].strip()
            if value == "|":
                indent = len(lines[i + 1]) - len(lines[i + 1].lstrip())
                block = []
                i += 1
                while i < len(lines) and (
                    not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) >= indent
                ):
                    block.append(lines[i].strip())
                    i += 1
                yield name, " ".join(b for b in block if b)
                name = None
                continue
            yield name, value
            name = None
        i += 1
