"""The migration runner: ordered, recorded, and safe to run concurrently."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from orderflow.migrate import apply_migrations, discover, ensure_database
from orderflow.models import OrderState
from orderflow.settings import REPO_ROOT


async def test_concurrent_runners_apply_each_migration_once(postgres_dsn: str) -> None:
    name = f"mig_{uuid.uuid4().hex[:8]}"
    dsn = urlunsplit(urlsplit(postgres_dsn)._replace(path=f"/{name}"))
    await ensure_database(dsn)
    results = await asyncio.gather(
        *(apply_migrations(dsn, REPO_ROOT / "migrations") for _ in range(4))
    )
    applied = sorted(v for r in results for v in r)
    assert applied == [v for v, _ in discover(REPO_ROOT / "migrations")]
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(applied)
        assert await conn.fetchval("SELECT count(*) FROM order_states") == len(OrderState)
    finally:
        await conn.close()
    assert await apply_migrations(dsn, REPO_ROOT / "migrations") == []


def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "init.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match=r"0001_name\.sql"):
        discover(tmp_path)
