"""Scope a PromQL expression: add one label matcher to every vector selector in it.

The dashboards are written without a namespace; `scoped(expr, 'namespace=~"$namespace"')`
narrows every metric they read to the namespaces chosen in Grafana's variable, so two
releases in one Prometheus are not added up. Just enough PromQL reading for the
queries of observability/dashboards.py: strings, label matchers, range brackets and
grouping clauses (`by (...)`, `on (...)`, ...) are copied as they are; a name followed
by `(` is a function or aggregation; operators and keywords are left alone; any other
name is a metric, and gets the matcher.
"""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
# Aggregations may put their grouping before the parenthesis: `sum by (le) (...)`.
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values", "group", "limitk", "limit_ratio",
}  # fmt: skip
_CLOSE = {"{": "}", "[": "]", '"': '"'}


def _copy_until(expr: str, start: int, close: str) -> int:
    """Index after the `close` that ends what opens at `start` (strings honour escapes)."""
    i = start + 1
    while i < len(expr) and expr[i] != close:
        i += 2 if expr[i] == "\\" else 1
        if expr[i - 1] == '"' and close != '"':  # a string inside {...}
            i = _copy_until(expr, i - 1, '"')
    return i + 1


def scoped(expr: str, matcher: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(expr):
        char = expr[i]
        if char in _CLOSE:
            end = _copy_until(expr, i, _CLOSE[char])
            out.append(expr[i:end])
            i = end
            continue
        if char.isdigit():
            match = _NUMBER.match(expr, i)
            assert match is not None
            out.append(match.group())
            i = match.end()
            continue
        match = _IDENTIFIER.match(expr, i)
        if match is None:
            out.append(char)
            i += 1
            continue
        name, i = match.group(), match.end()
        rest = expr[i:].lstrip()
        out.append(name)
        if name in _GROUPING and rest.startswith("("):
            start = expr.index("(", i)
            end = expr.index(")", start) + 1
            out.append(expr[i:end])
            i = end
        elif rest.startswith("(") or name.lower() in _KEYWORDS | _AGGREGATIONS:
            continue
        elif rest.startswith("{"):
            brace = expr.index("{", i)
            inner_end = _copy_until(expr, brace, "}") - 1
            inner = expr[brace + 1 : inner_end].strip()
            out.append(expr[i:brace] + "{" + (f"{matcher},{inner}" if inner else matcher) + "}")
            i = inner_end + 1
        else:
            out.append("{" + matcher + "}")
    return "".join(out)
