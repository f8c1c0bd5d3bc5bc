"""values.schema.json and the chart's README are generated from tools/chart_schema.py
(`make chart-docs`): committed as generated, a description on every key, the two
workers from one definition, and the same keys as values.yaml."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tools import chart_docs, chart_schema

SCHEMA = json.loads(chart_docs.SCHEMA_FILE.read_text())
VALUES = yaml.safe_load(chart_docs.VALUES_FILE.read_text())


def test_committed_files_are_what_the_generator_writes() -> None:
    for path, text in chart_docs.files().items():
        assert path.read_text() == text, f"{path.name} is stale: run `make chart-docs`"


def test_every_key_has_a_description() -> None:
    missing = [path for path, node in chart_docs.keys(SCHEMA) if not node.get("description")]
    assert not missing
    assert len(list(chart_docs.keys(SCHEMA))) > 150


def test_the_workers_share_one_definition() -> None:
    props = SCHEMA["properties"]
    assert props["orderWorker"]["$ref"] == props["shippingWorker"]["$ref"] == "#/$defs/worker"
    assert "keda" in SCHEMA["$defs"]["worker"]["properties"]


def _value_paths(values: Any, path: str = "") -> set[str]:
    out = set()
    for key, value in values.items():
        here = f"{path}.{key}" if path else key
        out.add(here)
        if isinstance(value, dict):
            out |= _value_paths(value, here)
    return out


def test_values_yaml_and_the_schema_name_the_same_keys() -> None:
    closed = {
        path
        for path, node in chart_docs.keys(SCHEMA)
        if node.get("type") != "object" or node.get("additionalProperties") is False
    }
    described = {path for path, _ in chart_docs.keys(SCHEMA)}
    in_values = _value_paths(VALUES)
    # Maps of free keys (labels, nodeSelector, affinity, ...) hold no schema keys below them.
    free = {p for p, n in chart_docs.keys(SCHEMA) if p not in closed}
    in_values = {p for p in in_values if not any(p.startswith(f"{f}.") for f in free)}
    assert in_values == described, in_values ^ described


def test_a_description_is_required_to_generate() -> None:
    with pytest.raises(ValueError, match="description"):
        chart_docs.string(" ")
    with pytest.raises(ValueError, match="description"):
        chart_docs.ref("worker", "")


def test_readme_lists_every_key_with_its_default() -> None:
    readme = chart_docs.README_FILE.read_text()
    assert readme.startswith(chart_schema.README_INTRO.splitlines()[0])
    for path, _ in chart_docs.keys(SCHEMA):
        assert f"| `{path}` |" in readme, path
    assert "| `orderWorker.keda.minReplicas` | integer | `1` |" in readme
