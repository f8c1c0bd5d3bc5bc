"""The one configuration object, read from the environment (twelve-factor).

Every process (API, workers, migrations, local stack, CLI) builds its settings
from here; nothing else reads ``os.environ``. Field names map to upper-case
environment variables (``database_url`` <- ``DATABASE_URL``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orderflow.payload_codec import Keyring, KeyringError

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # --- Temporal -----------------------------------------------------------
    temporal_address: str = Field(
        "127.0.0.1:7233",
        description="host:port of the Temporal frontend. `make run` starts a dev server "
        "here unless TEMPORAL_ADDRESS is set in the environment.",
    )
    temporal_namespace: str = "default"
    # A TLS-terminated frontend or Temporal Cloud (the Helm chart's `temporal.mode: external`):
    # the files are mounted from a Secret; all unset means plain gRPC, as the dev server speaks.
    temporal_tls: bool = False
    temporal_tls_ca_path: Path | None = None
    temporal_tls_cert_path: Path | None = None
    temporal_tls_key_path: Path | None = None
    temporal_api_key: SecretStr | None = None
    order_task_queue: str = "orders"
    shipping_task_queue: str = "shipping"

    # --- Payload encryption (orderflow/payload_codec.py) -----------------------
    payload_keys: SecretStr | None = Field(
        None,
        description="AES-256 keys for every Temporal payload, `id:base64key[,id:base64key...]` "
        "(32 random bytes each: `openssl rand -base64 32`). Every listed key decrypts; "
        "PAYLOAD_KEY_ID encrypts. Required by the API and the workers; `make run` generates a "
        "development key in DATA_DIR when unset. In Kubernetes: a Secret "
        "(payloadEncryption.existingSecret).",
    )
    payload_key_id: str | None = Field(
        None,
        description="The key id new payloads are encrypted with (the current key); default: "
        "the first in PAYLOAD_KEYS. Rotate by adding the new key everywhere first, then "
        "making it current.",
    )
    codec_server_host: str = Field(
        "127.0.0.1",
        description="Where the codec server (python -m orderflow.codec_server) listens.",
    )
    codec_server_port: int = Field(8088, ge=1, le=65535)
    codec_server_token: SecretStr | None = Field(
        None,
        description="Bearer token the codec server requires on /encode and /decode "
        "(`temporal ... --codec-auth 'Bearer <token>'`); the server refuses to start without it.",
    )
    codec_server_cors_origin: str = Field(
        "http://127.0.0.1:8233",
        description="The Temporal UI's origin, the only one the codec server's CORS admits.",
    )

    # --- PostgreSQL ---------------------------------------------------------
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:55432/orderflow",
        description="asyncpg DSN. `make run` starts an embedded PostgreSQL on port 55432 "
        "unless DATABASE_URL is set in the environment.",
    )
    db_pool_min_size: int = Field(1, ge=0)
    db_pool_max_size: int = Field(10, ge=1)
    # An activity attempt is cut at a few hundred ms (see workers/policies.py); a
    # statement that runs longer than this is a stuck database, not slow work.
    db_command_timeout_seconds: float = Field(5.0, gt=0)
    migrations_dir: Path = REPO_ROOT / "migrations"

    # --- Order process ------------------------------------------------------
    review_timeout_seconds: float = Field(
        10.0, gt=0, description="How long an order waits for `approve` before it is cancelled."
    )
    shipping_max_attempts: int = Field(
        3, ge=1, le=10, description="Shipping runs (child workflows) before the order fails."
    )
    update_timeout_seconds: float = Field(
        10,
        gt=0,
        description="How long the API waits for the order worker to accept or reject "
        "cancel/update-address before answering 503 (approve is a signal: it does not wait).",
    )
    flaky: Literal["on", "off"] = Field(
        "on", description="`off` skips flaky_call() in the business functions (debugging only)."
    )

    # --- Reconciliation (workers/reconciler.py) -------------------------------
    reconcile_interval_seconds: float = Field(
        5.0,
        ge=0,
        description="How often each order worker looks for orders whose workflow Temporal "
        "ended without their final write (terminated, timed out, deleted) and closes them as "
        "TERMINATED; 0 turns it off.",
    )
    reconcile_quiet_seconds: float = Field(
        60.0,
        gt=0,
        description="An unfinished order not written for this long has its workflow looked up "
        "one by one (at most once per period): finds workflows deleted from Temporal.",
    )

    # --- Workers ------------------------------------------------------------
    worker_max_concurrent_workflow_tasks: int = Field(100, ge=1)
    worker_max_concurrent_local_activities: int = Field(500, ge=1)
    worker_max_concurrent_activities: int = Field(100, ge=1)
    worker_workflow_sandbox: bool = Field(
        False,
        description="Run workflow code in the SDK's sandbox, which catches non-deterministic "
        "calls at run time. The workflow tests (tests/workers) run it sandboxed; workers "
        "default to off for its CPU cost (docs/decisions/0008-workflow-sandbox-off-by-default.md).",
    )
    worker_workflow_task_pollers: int = Field(
        20,
        ge=2,
        description="Concurrent workflow-task polls (the SDK's default is 5). A fifth poll the "
        "task queue itself, the rest the worker's sticky queue. With the default's single "
        "task-queue poll, new orders' first tasks queued up at ~3/s under a burst; see "
        "docs/design.md.",
    )
    worker_http_host: str = Field(
        "127.0.0.1", description="Where workers serve /healthz, /readyz (0.0.0.0 in a pod)."
    )
    order_worker_http_port: int = Field(9101, ge=1, le=65535)
    shipping_worker_http_port: int = Field(9102, ge=1, le=65535)
    worker_shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="How long a worker lets in-flight tasks finish on SIGTERM."
    )
    # Worker Versioning (workers/versioning.py, docs/kubernetes.md#worker-versioning).
    worker_versioning: bool = Field(
        False,
        description="Run each worker as a version of a Temporal Worker Deployment, every "
        "order PINNED to the version it started on. Off by default: an unversioned install "
        "rolls its workers in place, and the replay gate (docs/releasing.md) keeps that safe; "
        "the chart turns it on with workerVersioning.enabled (Temporal's worker controller).",
    )
    worker_deployment_prefix: str = Field(
        "orderflow",
        min_length=1,
        description="Worker Deployment names are `<prefix>-order-worker` and "
        "`<prefix>-shipping-worker`; the chart sets `<namespace>/<release fullname>`, the "
        "name the worker controller gives them.",
    )
    worker_build_id: str | None = Field(
        None,
        description="This worker's version within its Worker Deployment; default: the "
        "package version (workers.versioning.build_id(), = image tag = appVersion); empty "
        "is unset. Two codes must never share one.",
    )

    # --- HTTP functions -----------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_base_url: str = Field("http://127.0.0.1:8000", description="Where the CLI finds the API.")
    api_token: SecretStr | None = Field(
        None,
        description="When set, the order endpoints require `Authorization: Bearer <token>` "
        "(the CLI sends it). /healthz, /readyz and /metrics stay open.",
    )
    api_public_reads: bool = Field(
        False,
        description="With API_TOKEN set, let GET status/events through without the token.",
    )
    api_max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Larger request bodies are refused with 413 before they are parsed. "
        "The largest valid order (100 items) is about 4 KiB.",
    )

    status_max_waits: int = Field(
        1000,
        ge=1,
        description="Status requests one API process holds waiting (`?wait=`) at most; past "
        "it a waiting request is answered at once with the current state (a long poll may "
        "always end early: its client asks again).",
    )

    # --- Admission: shed new orders early when past capacity (docs/design.md) --
    shed_queue_seconds: float = Field(
        4.5,
        ge=0,
        description="Refuse new orders (503 + Retry-After) once a new one would spend longer "
        "than this being processed, on average: by Little's law, active orders (stored, not "
        "ended, written in the last two minutes, orders waiting for approval not counted, "
        "plus those this API process started that are not stored yet) divided by the orders "
        "ended per second lately. 4.5 s kept every admitted order within the 15 s promise at "
        "twice the knee, where 6 s let the slowest take 17-21 s (docs/design.md#admission). "
        "0: off.",
    )
    shed_min_active_orders: int = Field(
        30,
        ge=1,
        description="Never refuse for active orders while at most this many are being "
        "processed: a stack that was idle, or has just started, has finished too few orders "
        "to measure its rate, and must still take a burst (10 orders/s from idle is ~20 "
        "active).",
    )
    shed_max_start_latency_seconds: float = Field(
        0.5,
        ge=0,
        description="Refuse new orders while Temporal takes longer than this to accept a "
        "start (moving average of this API process's recent starts); healthy starts take "
        "tens of ms. 0: off.",
    )
    shed_retry_after_seconds: int = Field(
        1, ge=1, description="The Retry-After a refused start is answered with."
    )

    # --- Local stack (make run) ---------------------------------------------
    data_dir: Path = Field(
        REPO_ROOT / ".data", description="Where the embedded services keep their data."
    )
    embedded_temporal_port: int = Field(7233, ge=1, le=65535)
    embedded_temporal_ui_port: int = Field(8233, ge=1, le=65535)
    embedded_temporal_metrics_port: int = Field(
        8234,
        ge=1,
        le=65535,
        description="The embedded Temporal server's own Prometheus metrics (frontend, "
        "history, matching and persistence latencies), scraped by `make observe`.",
    )
    embedded_temporal_storage: Literal["file", "memory"] = Field(
        "file",
        description="`file` keeps workflows in DATA_DIR/temporal.sqlite across restarts, in "
        "step with PostgreSQL; `memory` forgets them when the server stops (faster: see "
        "docs/benchmarks.md), for throwaway runs only.",
    )
    embedded_postgres_port: int = Field(55432, ge=1, le=65535)

    # --- Observability (docs/observability.md) --------------------------------
    temporal_sdk_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Loopback port of the Temporal SDK's own Prometheus listener inside a "
        "worker. Its metrics are served again on the worker's /metrics, so nothing scrapes "
        "this port; 0 picks a free one.",
    )
    prometheus_port: int = Field(
        9090, ge=1, le=65535, description="Where `make observe` serves Prometheus (127.0.0.1)."
    )
    # The standard OpenTelemetry variables, read here like every other setting.
    otel_traces_exporter: Literal["none", "console", "otlp"] = Field(
        "none", description="`otlp` sends spans to OTEL_EXPORTER_OTLP_ENDPOINT."
    )
    otel_service_name: str | None = Field(
        None, description="Defaults to orderflow-<component>, one service per process kind."
    )
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"

    # --- Logging ------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "api_token", "payload_keys", "payload_key_id", "codec_server_token", mode="before"
    )
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        # API_TOKEN="" must mean "no auth", not "the empty string is the token"; an empty
        # key or token is unset, never a secret.
        return None if value == "" else value

    def keyring(self) -> Keyring:
        """The payload keys; KeyringError when PAYLOAD_KEYS is unset or malformed."""
        if self.payload_keys is None:
            raise KeyringError(
                "PAYLOAD_KEYS is not set: every Temporal payload is encrypted, so the API and "
                "the workers need the keys (`make run` generates a development key; "
                "production: docs/kubernetes.md#payload-encryption-keys)"
            )
        return Keyring.parse(self.payload_keys.get_secret_value(), self.payload_key_id)

    @property
    def embedded_temporal(self) -> bool:
        """`make run` starts a Temporal dev server unless TEMPORAL_ADDRESS was given."""
        return "temporal_address" not in self.model_fields_set

    @property
    def embedded_postgres(self) -> bool:
        """`make run` starts PostgreSQL unless DATABASE_URL was given."""
        return "database_url" not in self.model_fields_set

    @property
    def tracing_enabled(self) -> bool:
        return self.otel_traces_exporter != "none"

    @property
    def flaky_enabled(self) -> bool:
        return self.flaky == "on"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
