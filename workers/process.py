"""Run a Temporal worker as a long-lived process with a graceful shutdown.

SIGTERM or SIGINT stops polling for new tasks; in-flight tasks get
``WORKER_SHUTDOWN_GRACE_SECONDS`` to finish, then are cancelled. Workflow state
lives in Temporal, so whatever was cut short is picked up by another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from orderflow.db import create_pool
from orderflow.log import configure_logging, get_logger
from orderflow.metrics import announce
from orderflow.settings import Settings, get_settings
from orderflow.temporal import connect
from orderflow.tracing import configure_tracing
from workers import flaky, versioning
from workers.deadlines import DeadlineInterceptor
from workers.health import WorkerHealth
from workers.liveness import PollWatch
from workers.telemetry import WorkerMetrics

log = get_logger(__name__)


def build_worker(
    client: Client,
    settings: Settings,
    task_queue: str,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]],
    kind: str,
) -> Worker:
    """``kind``: ``order-worker`` or ``shipping-worker``, the name of its Worker Deployment
    (after WORKER_DEPLOYMENT_PREFIX) when WORKER_VERSIONING is on."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_concurrent_local_activities=settings.worker_max_concurrent_local_activities,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_task_polls=settings.worker_workflow_task_pollers,
        workflow_runner=(
            SandboxedWorkflowRunner()
            if settings.worker_workflow_sandbox
            else UnsandboxedWorkflowRunner()
        ),
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_seconds),
        interceptors=[DeadlineInterceptor()],
        deployment_config=deployment_config(settings, kind),
    )


def deployment_config(settings: Settings, kind: str) -> WorkerDeploymentConfig | None:
    """The worker's Worker Deployment version, or None (unversioned) when versioning is off."""
    if not settings.worker_versioning:
        return None
    return versioning.deployment_config(
        settings.worker_deployment_prefix, kind, settings.worker_build_id or None
    )


# Work a worker process does beside its task queue, for as long as it serves.
Background = Callable[[Client, Settings, asyncpg.Pool], Coroutine[Any, Any, None] | None]


@contextlib.asynccontextmanager
async def _alongside(work: Coroutine[Any, Any, None] | None) -> AsyncIterator[None]:
    task = asyncio.create_task(work) if work is not None else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def serve(
    component: str,
    task_queue: Callable[[Settings], str],
    http_port: Callable[[Settings], int],
    make_worker: Callable[[Client, Settings, asyncpg.Pool], Worker],
    background: Background | None = None,
) -> None:
    settings = get_settings()
    configure_logging(component, settings.log_level, settings.log_format)
    flaky.set_enabled(settings.flaky_enabled)
    tracing = configure_tracing(settings, component)
    metrics = WorkerMetrics(settings)
    announce(component)
    # The client's TracingInterceptor also applies to the worker built on it.
    client = await connect(settings, runtime=metrics.runtime)
    pool = await create_pool(settings)
    worker = make_worker(client, settings, pool)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    watch = PollWatch(metrics.sdk_text)
    health = WorkerHealth(client, pool, metrics.render, not_live=watch.not_live)
    http = health.server(settings.worker_http_host, http_port(settings))
    http_task = asyncio.create_task(http.serve())
    log.info(
        "worker started",
        task_queue=task_queue(settings),
        temporal=settings.temporal_address,
        flaky=settings.flaky,
        http=f"{settings.worker_http_host}:{http_port(settings)}",
        tracing=settings.otel_traces_exporter if tracing else "off",
    )
    version = worker.config().get("deployment_config")
    if version is not None:
        # A version nothing makes current is polled but given no orders: say so once.
        log.warning(
            "versioned worker: it runs orders only once its version is current "
            "(Temporal's worker controller, or `temporal worker deployment set-current-version`)",
            deployment=version.version.deployment_name,
            build_id=version.version.build_id,
        )
    async with (
        worker,
        _alongside(watch.run()),
        _alongside(background(client, settings, pool) if background else None),
    ):
        health.probes.serving()
        watch.start()
        await stop.wait()
        health.probes.stopping("draining")
        watch.stop()
        log.info(
            "shutting down: finishing in-flight tasks",
            grace_seconds=settings.worker_shutdown_grace_seconds,
        )
    http.should_exit = True
    await http_task
    await metrics.close()
    await pool.close()
    log.info("worker stopped")


def main(
    component: str,
    task_queue: Callable[[Settings], str],
    http_port: Callable[[Settings], int],
    make_worker: Callable[[Client, Settings, asyncpg.Pool], Worker],
    background: Background | None = None,
) -> None:
    main_coroutine = serve(component, task_queue, http_port, make_worker, background)
    if sys.platform == "win32":
        asyncio.run(main_coroutine)
    else:
        # uvloop: the worker's event loop (activity tasks, the SDK's hand-offs from its
        # core, wake-ups from the workflow threads) is most of a worker's CPU.
        import uvloop

        uvloop.run(main_coroutine)
