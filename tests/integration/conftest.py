"""Integration tests use the `api_url` and `http` fixtures of tests/conftest.py: the
whole stack (`python -m orderflow.devstack`) pointed at the session's PostgreSQL and
Temporal through DATABASE_URL and TEMPORAL_ADDRESS."""
