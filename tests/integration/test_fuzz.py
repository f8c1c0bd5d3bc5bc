"""Property-based fuzz of the HTTP API from its own OpenAPI schema (schemathesis),
against the running stack: valid and invalid input for every operation, with
and without the token. No answer may be a 5xx, and every answer must match
what the schema documents (status code, content type, body)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from functions.main import app
from tests.integration.conftest import API_TOKEN

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


# The schema the running API serves is this app's; reading it in-process lets the
# tests be generated at collection time.
schema = schemathesis.openapi.from_dict(app.openapi())


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any], api_url: str) -> None:
    case.call_and_validate(
        base_url=api_url,
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        checks=CHECKS,
        timeout=30,
    )
