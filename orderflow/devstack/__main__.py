"""The whole stack on one machine: `make run` (or `python -m orderflow.devstack`).

Starts, in order and each only once the one before is ready:
PostgreSQL (embedded, unless DATABASE_URL is set) -> migrations ->
Temporal dev server (embedded, unless TEMPORAL_ADDRESS is set) ->
order worker -> shipping worker -> HTTP API. Then streams their logs and keeps
them running until Ctrl-C (or SIGTERM), when it stops them in reverse order.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from orderflow.devstack import dev_key, ports, postgres, readiness, temporal
from orderflow.devstack.supervisor import Component, Supervisor
from orderflow.log import configure_logging, get_logger, redact
from orderflow.migrate import apply_migrations, ensure_database
from orderflow.settings import Settings, get_settings

log = get_logger("devstack")


def _bin(name: str) -> str:
    """A console script installed next to this interpreter (the project's venv)."""
    return str(Path(sys.executable).parent / name)


async def _start_postgres(sup: Supervisor, settings: Settings, durable: bool) -> str:
    port = settings.embedded_postgres_port
    pgdata = settings.data_dir / "postgres"
    log.info("preparing embedded PostgreSQL", data=str(pgdata), port=port)
    user = await asyncio.to_thread(postgres.prepare, pgdata)
    admin = postgres.dsn(port, "postgres")
    await sup.start(
        Component(
            "postgres",
            postgres.server_command(pgdata, port, durable=durable),
            user=user,
            ready=lambda: readiness.wait_for("PostgreSQL", readiness.postgres(admin), 60),
            stop_grace_seconds=30,
        )
    )
    return postgres.dsn(port)


async def _start_temporal(sup: Supervisor, settings: Settings) -> str:
    address = f"127.0.0.1:{settings.embedded_temporal_port}"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await sup.start(
        Component(
            "temporal",
            temporal.server_command(_bin("temporal"), settings),
            ready=lambda: readiness.wait_for(
                "Temporal", readiness.temporal(address, settings.temporal_namespace), 90
            ),
        )
    )
    return address


async def run_stack(settings: Settings, *, durable: bool = True) -> None:
    taken = ports.busy(settings)
    if taken:
        log.error("stack not started", error=ports.explain(taken))
        raise SystemExit(1)

    payload_keys, dev_key_file = _payload_keys(settings)
    sup = Supervisor(hold_dir=settings.data_dir / "hold")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    try:
        database_url = settings.database_url
        if settings.embedded_postgres:
            database_url = await _start_postgres(sup, settings, durable)
        else:
            log.info("using existing PostgreSQL from DATABASE_URL")
        await ensure_database(database_url)
        applied = await apply_migrations(database_url, settings.migrations_dir)
        log.info("database schema up to date", newly_applied=applied)

        temporal_address = settings.temporal_address
        if settings.embedded_temporal:
            temporal_address = await _start_temporal(sup, settings)
        else:
            log.info("using existing Temporal from TEMPORAL_ADDRESS", address=temporal_address)
            # Its settings cannot be read over the API, so say what they must be.
            log.warning(
                "an external Temporal needs one task-queue partition for `orders` and "
                "`shipping` to keep orders within 15 s at 10 orders/s on a small machine; a "
                "plain `temporal server start-dev` has four (see README, 'Someone else's "
                "Temporal')",
                flags=" ".join(temporal.TEMPORAL_DEV_TUNING),
            )

        env = {
            "DATABASE_URL": database_url,
            "TEMPORAL_ADDRESS": temporal_address,
            "PAYLOAD_KEYS": payload_keys,
        }
        for name, module, port in (
            ("order-worker", "workers.order", settings.order_worker_http_port),
            ("shipping-worker", "workers.shipping", settings.shipping_worker_http_port),
        ):
            base = f"http://127.0.0.1:{port}"
            await sup.start(
                Component(
                    name,
                    [sys.executable, "-m", module],
                    env=env,
                    ready=lambda url=base: readiness.wait_for(  # type: ignore[misc]
                        url, readiness.serving_and_connected(url), 60
                    ),
                )
            )
        api = f"http://{settings.api_host}:{settings.api_port}"
        await sup.start(
            Component(
                "api",
                [sys.executable, "-m", "functions"],
                env=env,
                ready=lambda: readiness.wait_for("API", readiness.serving_and_connected(api), 60),
            )
        )
        _banner(settings, api, database_url, temporal_address, dev_key_file)
        await stop.wait()
    except readiness.NotReady as err:
        log.error("stack failed to start", error=str(err))
        raise SystemExit(1) from err
    finally:
        log.info("stopping the stack")
        await sup.stop()


def _payload_keys(settings: Settings) -> tuple[str, Path | None]:
    """PAYLOAD_KEYS for the API and workers, and the development key's file if one is used."""
    if settings.payload_keys is not None:
        settings.keyring()  # malformed keys stop the stack here, not in every component
        return settings.payload_keys.get_secret_value(), None
    spec, path = dev_key.development_keys(settings.data_dir)
    log.warning(
        "PAYLOAD_KEYS is not set: Temporal payloads are encrypted with a DEVELOPMENT key "
        "kept in plain text in the data directory. Never use it in production: set "
        "PAYLOAD_KEYS (docs/kubernetes.md#payload-encryption-keys)",
        key_file=str(path),
    )
    return spec, path


def _banner(
    settings: Settings,
    api: str,
    database_url: str,
    temporal_address: str,
    dev_key_file: Path | None = None,
) -> None:
    ui = (
        f"http://127.0.0.1:{settings.embedded_temporal_ui_port}"
        if settings.embedded_temporal
        else "(your Temporal's UI)"
    )
    lines = [
        "",
        f"Orderflow is running. Ctrl-C stops everything (data is kept in {settings.data_dir}).",
        f"  API           {api}   (docs: {api}/docs)",
        f"  Temporal UI   {ui}",
        f"  Temporal      {temporal_address}",
        *(
            [f"  Its metrics   http://127.0.0.1:{settings.embedded_temporal_metrics_port}/metrics"]
            if settings.embedded_temporal
            else []
        ),
        f"  PostgreSQL    {redact(database_url)}",
        *(
            [
                f"  !! DEVELOPMENT payload key {dev_key_file} (PAYLOAD_KEYS unset): not for "
                "production !!",
                "  Decode in the CLI: docs/development.md#reading-encrypted-payloads",
            ]
            if dev_key_file
            else []
        ),
        "  Try:          .venv/bin/orderflow start demo-1 && .venv/bin/orderflow approve demo-1"
        " && .venv/bin/orderflow watch demo-1",
        "",
    ]
    print("\n".join(lines), flush=True)  # noqa: T201


def main() -> None:
    settings = get_settings()
    configure_logging("devstack", settings.log_level, settings.log_format)
    durable = "--ephemeral" not in sys.argv
    asyncio.run(run_stack(settings, durable=durable))


if __name__ == "__main__":
    main()
