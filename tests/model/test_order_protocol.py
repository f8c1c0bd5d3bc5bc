"""The order protocol, explored by a state machine on real Temporal and PostgreSQL.

``make test`` runs a fixed, derandomised budget of examples; ``make test-model``
explores for ten minutes (MODEL_EXAMPLES / MODEL_SECONDS set the budget).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.model.protocol import OrderProtocol
from tests.model.runtime import ModelRuntime

EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "20"))
EXPLORE = os.environ.get("MODEL_EXPLORE") == "1"


@pytest.mark.timeout(1200 if EXPLORE else 150)
def test_every_answer_holds_under_any_interleaving(model: ModelRuntime) -> None:
    OrderProtocol.runtime = model
    run_state_machine_as_test(
        OrderProtocol,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=10,
            deadline=None,
            derandomize=not EXPLORE,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
