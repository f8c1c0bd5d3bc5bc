"""Apply the numbered SQL files in ``migrations/`` in order, once each.

Safe to run from several processes at once (every worker, the Kubernetes Job):
a session-level advisory lock serialises them, and ``schema_migrations``
records what has been applied. Each file runs in its own transaction.

    python -m orderflow.migrate
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from orderflow.log import configure_logging, get_logger
from orderflow.settings import Settings, get_settings

log = get_logger(__name__)

# Any constant unique to this project; all migration runners agree on it.
_ADVISORY_LOCK_KEY = 0x0F10_0001
_FILE_PATTERN = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def discover(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise ValueError(f"migration file name must look like 0001_name.sql: {path.name}")
        found.append((int(match.group(1)), path))
    versions = [version for version, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers in {directory}")
    return found


async def apply_migrations(dsn: str, directory: Path) -> list[int]:
    """Return the versions applied by this call (empty when already up to date)."""
    migrations = discover(directory)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version    INT PRIMARY KEY,
                       name       TEXT NOT NULL,
                       applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            )
            rows = await conn.fetch("SELECT version FROM schema_migrations")
            done = {row["version"] for row in rows}
            applied = []
            for version, path in migrations:
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        version,
                        path.name,
                    )
                log.info("migration applied", version=version, file=path.name)
                applied.append(version)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)
    finally:
        await conn.close()


async def ensure_database(dsn: str) -> None:
    """Create the database named in the DSN if the server lacks it (local stack only)."""
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z0-9_]{1,63}", name):
        raise ValueError(f"database name must be 1-63 of [A-Za-z0-9_]: {name!r}")
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
        try:
            # Identifiers cannot be parameters; the name was checked against a strict pattern.
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await admin.close()
    else:
        await conn.close()


def main() -> int:
    settings: Settings = get_settings()
    configure_logging("migrate", settings.log_level, settings.log_format)
    applied = asyncio.run(apply_migrations(settings.database_url, settings.migrations_dir))
    log.info("migrations up to date", applied=applied)
    return 0


if __name__ == "__main__":
    sys.exit(main())
