"""SQL is parameterised everywhere: no query text is built from values (checked
on the source), and injection-shaped ids are plain data to every store function
(checked on real PostgreSQL)."""

from __future__ import annotations

import ast
from pathlib import Path

import asyncpg
import pytest

from orderflow import store
from orderflow.models import OrderState
from orderflow.settings import REPO_ROOT

QUERY_METHODS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "cursor", "prepare"}
# Built on purpose, each for a reason given at the call: migration files are the
# SQL; CREATE DATABASE takes an identifier, which cannot be a parameter and is
# checked against a strict pattern first.
ALLOWED = {
    ("orderflow/migrate.py", "apply_migrations"),
    ("orderflow/migrate.py", "ensure_database"),
}
EVIL = "x'); DROP TABLE orders; --"


def _dynamic_queries(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in QUERY_METHODS
                and node.args
                and not (
                    isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                )
            ):
                found.append((func.name, node.lineno))
    return found


def test_every_query_is_a_constant_string() -> None:
    offenders = []
    for package in ("orderflow", "workers", "functions"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(REPO_ROOT))
            for func, line in _dynamic_queries(path):
                if (rel, func) not in ALLOWED:
                    offenders.append(f"{rel}:{line} in {func}")
    assert not offenders, f"query text built at run time: {offenders}"


def test_the_checker_sees_a_built_query(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("async def f(conn, x):\n    await conn.fetch(f'SELECT {x}')\n")
    assert _dynamic_queries(sample) == [("f", 2)]


async def test_injection_shaped_ids_are_data(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM orders")
        assert await store.get_order(conn, EVIL) is None
        assert await store.get_payment(conn, EVIL) is None
        assert await store.list_events(conn, EVIL) == []
        assert await store.refund_payment(conn, EVIL) is None
        with pytest.raises(store.UnknownOrder):
            await store.advance_order(conn, EVIL, OrderState.VALIDATED, "order_validated")
        # The id is refused by the table's own CHECK, as a value, not run as SQL.
        with pytest.raises(asyncpg.CheckViolationError):
            await store.record_order(conn, EVIL, "p", {}, [])
        assert await conn.fetchval("SELECT count(*) FROM orders") == before
