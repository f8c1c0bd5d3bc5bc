"""charts/orderflow/values.schema.json and charts/orderflow/README.md, both generated from
one source: the definitions in tools/chart_schema.py (`make chart-docs`).

The schema is strict (every object closed, every key required, so a misspelt or unknown
key fails the install) and every key carries a description, which the generator
refuses to leave out. The README's table lists every key with its type, its default
(from values.yaml) and that description. tests/charts/test_schema.py checks that the
committed files are what this writes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from orderflow.settings import REPO_ROOT

CHART_DIR = REPO_ROOT / "charts" / "orderflow"
SCHEMA_FILE = CHART_DIR / "values.schema.json"
README_FILE = CHART_DIR / "README.md"
VALUES_FILE = CHART_DIR / "values.yaml"

Node = dict[str, Any]


# --- the little language tools/chart_schema.py is written in -------------------------


def _node(kind: str | list[str], desc: str, **extra: Any) -> Node:
    if not desc.strip():
        raise ValueError("every key needs a description")
    return {"type": kind, "description": desc, **{k: v for k, v in extra.items() if v is not None}}


def string(desc: str, *, min_length: int | None = None, pattern: str | None = None) -> Node:
    return _node("string", desc, minLength=min_length, pattern=pattern)


def enum(desc: str, *values: str) -> Node:
    return _node("string", desc, enum=list(values))


def integer(desc: str, *, minimum: int | None = None, maximum: int | None = None) -> Node:
    return _node("integer", desc, minimum=minimum, maximum=maximum)


def number(desc: str, *, exclusive_minimum: float | None = None) -> Node:
    return _node("number", desc, exclusiveMinimum=exclusive_minimum)


def boolean(desc: str) -> Node:
    return _node("boolean", desc)


def port(desc: str) -> Node:
    return integer(desc, minimum=1, maximum=65535)


def node_port(desc: str) -> Node:
    return _node(["integer", "null"], desc, minimum=30000, maximum=32767)


def quantity(desc: str) -> Node:
    """A Kubernetes quantity (500m, 1Gi, 2)."""
    return _node(["string", "integer", "number"], desc)


def int_or_percent(desc: str) -> Node:
    return _node(["integer", "string"], desc)


def string_map(desc: str) -> Node:
    return _node("object", desc, additionalProperties={"type": "string"})


def passthrough(desc: str, kind: str = "object") -> Node:
    """Handed to Kubernetes as it is (a pod spec field): its own API validates it."""
    return _node(kind, desc)


def strings(desc: str) -> Node:
    return _node("array", desc, items={"type": "string", "minLength": 1})


def obj(desc: str, properties: dict[str, Node], *, optional: tuple[str, ...] = ()) -> Node:
    """A closed object: no other keys; every key required unless named optional."""
    return _node(
        "object",
        desc,
        additionalProperties=False,
        properties=properties,
        required=[k for k in properties if k not in optional],
    )


def ref(name: str, desc: str) -> Node:
    if not desc.strip():
        raise ValueError("every key needs a description")
    return {"$ref": f"#/$defs/{name}", "description": desc}


# --- walking a schema -----------------------------------------------------------------


def resolve(schema: Node, node: Node) -> Node:
    """The node a `$ref` points at, with the referring node's description."""
    if "$ref" not in node:
        return node
    target: Node = schema["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return {**target, "description": node["description"]}


def keys(schema: Node, node: Node | None = None, path: str = "") -> Iterator[tuple[str, Node]]:
    """Every key of the values, depth first: (dotted path, its resolved schema node)."""
    node = schema if node is None else node
    for name, child in node.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        resolved = resolve(schema, child)
        yield here, resolved
        yield from keys(schema, resolved, here)


def default_of(values: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return values


# --- the README -------------------------------------------------------------------------


def _type(node: Node) -> str:
    kind = node.get("type", "")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if "enum" in node:
        text = " \\| ".join(f"`{v}`" for v in node["enum"])
    return text


def _default(value: Any, node: Node) -> str:
    if node.get("type") == "object" and node.get("additionalProperties") is False:
        return ""  # its keys follow, each with its own default
    text = json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value
    return f"`{text}`" if text != "" else '`""`'


def _cell(text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def readme(schema: Node, values: Node, intro: str) -> str:
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for path, node in keys(schema):
        default = _default(default_of(values, path), node)
        rows.append(f"| `{path}` | {_type(node)} | {default} | {_cell(node['description'])} |")
    return intro.rstrip() + "\n\n" + "\n".join(rows) + "\n"


def files() -> dict[Path, str]:
    from tools import chart_schema

    schema = chart_schema.schema()
    values = yaml.safe_load(VALUES_FILE.read_text())
    return {
        SCHEMA_FILE: json.dumps(schema, indent=2) + "\n",
        README_FILE: readme(schema, values, chart_schema.README_INTRO),
    }


def main() -> int:
    for path, text in files().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO_ROOT)}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
