"""Translate business exceptions into Temporal failures the workflow can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError

from orderflow.store import OrderEnded, OrderOfAnotherRun, PaymentIdConflict, PaymentVoided


@contextmanager
def business_errors(*non_retryable: type[Exception]) -> Iterator[None]:
    """Errors retrying cannot fix become non-retryable ApplicationErrors named by type."""
    permanent: tuple[type[Exception], ...] = (
        PaymentIdConflict,
        OrderOfAnotherRun,
        PaymentVoided,
        OrderEnded,
        *non_retryable,
    )
    try:
        yield
    except Exception as err:
        if isinstance(err, permanent):
            raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from err
        raise
