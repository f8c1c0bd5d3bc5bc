"""Integration tests use the `api_url`, `http` and `stack_log` fixtures of
tests/conftest.py: the whole stack (`python -m orderflow.devstack`) pointed at the
session's PostgreSQL and Temporal through DATABASE_URL and TEMPORAL_ADDRESS, with
API_TOKEN set and a password in the database URL."""

from tests.conftest import API_TOKEN, DB_PASSWORD

__all__ = ["API_TOKEN", "DB_PASSWORD"]
