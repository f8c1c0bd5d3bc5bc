"""The API's probes: the shared ones (orderflow/health.py) over the API's connections.

Always ready while it answers: uvicorn runs the app's start-up before it listens
and closes the listener first thing on SIGTERM (and Kubernetes takes a
terminating pod out of its Service by itself), behind Lambda every invocation
is served. So readiness has nothing to wait for here; what can be missing is a
dependency, which /dependencies reports and each answer handles (503 with
Retry-After). The checks use the same lazily opened Temporal client and pool as
the order routes (functions/deps.py).
"""

from __future__ import annotations

from functions.deps import ResourcesDep
from orderflow import health


def api_checks(res: ResourcesDep) -> dict[str, health.Check]:
    async def temporal() -> None:
        await health.temporal_ok(await res.temporal())

    async def database() -> None:
        await health.database_ok(await res.db())

    return {"temporal": temporal, "database": database}


probes = health.Probes(api_checks, ready=True)
router = probes.router()
