"""flaky_call's designed failure, known to the shared layer.

The logs and Temporal's failure converter treat this one error as routine (no stack
trace, no duplicate SDK log line). They live below the workers, so the error is
defined here and ``workers/flaky.py`` raises it, rather than this layer importing
the workers.
"""

from __future__ import annotations

FORCED_FAILURE = "Forced failure for testing"


def is_forced_failure(error: BaseException) -> bool:
    """flaky_call's designed failure (the logs and the failure converter treat it as routine)."""
    return isinstance(error, RuntimeError) and str(error) == FORCED_FAILURE
