"""Structured JSON logs to stdout for every component.

structlog renders both our own log calls and stdlib records (Temporal's
workflow/activity loggers, uvicorn, asyncpg) as one JSON object per line. The
context Temporal attaches to its records is flattened into the fields every
line is searched by: ``order_id``, ``workflow_id``, ``activity``, ``attempt``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from orderflow.forced_failure import is_forced_failure
from orderflow.tracing import current_trace_ids

_TEMPORAL_FIELDS = {
    "workflow_id": "workflow_id",
    "run_id": "run_id",
    "workflow_type": "workflow_type",
    "task_queue": "task_queue",
    "activity_type": "activity",
    "update_name": "update",
}


# A password in a URL (postgresql://user:PASSWORD@host), a bearer token, and any
# field whose name says it holds a secret. Applied to every line of every
# component, so a secret put in a DSN or a header cannot reach the logs by accident.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^@/\s]+@")
_BEARER = re.compile(r"(bearer\s+)[^\s\"',;]+", re.IGNORECASE)
_SECRET_KEY = re.compile(
    r"password|passwd|secret|token|authorization|api_key|payload_keys", re.IGNORECASE
)
REDACTED = "***"


def redact(text: str) -> str:
    """``text`` with URL passwords and bearer tokens replaced by ***."""
    return _BEARER.sub(rf"\g<1>{REDACTED}", _URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", text))


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else _redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def _redact_secrets(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEY.search(key) and key != "event":
            event[key] = REDACTED
        else:
            event[key] = _redact_value(value)
    return event


def _add_trace_ids(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    # Lets a slow order's log lines be found from its trace, and the reverse.
    for key, value in current_trace_ids().items():
        event.setdefault(key, value)
    return event


def _flatten_temporal(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> Mapping[str, Any]:
    for key in ("temporal_workflow", "temporal_activity"):
        details = event.pop(key, None)
        if not isinstance(details, Mapping):
            continue
        for source, target in _TEMPORAL_FIELDS.items():
            if source in details and target not in event:
                event[target] = details[source]
        # The workflow context's `attempt` counts workflow *task* attempts, which
        # would only confuse; the activity's is the attempt that matters.
        if key == "temporal_activity" and "attempt" in details:
            event.setdefault("attempt", details["attempt"])
    workflow_id = event.get("workflow_id")
    if "order_id" not in event and isinstance(workflow_id, str):
        for prefix in ("order-", "shipping-"):
            if workflow_id.startswith(prefix):
                rest = workflow_id[len(prefix) :]
                event["order_id"] = rest.rsplit("-run", 1)[0] if prefix == "shipping-" else rest
    return event


class _ExpectedActivityFailure(logging.Filter):
    """Drop the SDK's line for activity attempts that fail as designed.

    The SDK logs every failed attempt with its traceback. For flaky_call's forced
    failures and for attempts cut at their deadline that only doubles the workflow's
    own `step attempt failed` line (which names the step, attempt and error) and
    costs worker CPU under load. Any other failure keeps its line and traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Completing activity as failed"):
            exc = record.exc_info[1]
            expected = isinstance(exc, asyncio.CancelledError) or (
                exc is not None and is_forced_failure(exc)
            )
            return not expected
        return True


def configure_logging(component: str, level: str = "INFO", fmt: str = "json") -> None:
    """Route structlog and stdlib logging to stdout; call once per process."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _flatten_temporal,
        _add_trace_ids,
        structlog.processors.format_exc_info,
        _redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(default=str)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _add_component(component),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    handler.addFilter(_ExpectedActivityFailure())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDK already puts this context on `extra`; repeating it inside the message
    # would only make lines longer and harder to search.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    _quiet_temporal_messages()


def _add_component(component: str) -> Any:
    def add(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        event.setdefault("component", component)
        event.pop("color_message", None)
        return event

    return add


def _quiet_temporal_messages() -> None:
    from temporalio import activity, workflow

    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
