"""Worker Versioning: each worker kind is a Worker Deployment, each release a version.

Off unless ``WORKER_VERSIONING`` is on (orderflow/settings.py): then
workers/process.build_worker gives both workers ``deployment_config`` from
``WORKER_DEPLOYMENT_PREFIX`` and ``WORKER_BUILD_ID``; the chart turns it on with
``workerVersioning.enabled`` (docs/kubernetes.md#worker-versioning).
tests/workers/test_versioning.py runs it on the dev server through that build path.

* Deployment name per worker kind: ``<prefix>-order-worker`` and
  ``<prefix>-shipping-worker`` (they scale and roll separately, so they version
  separately; a release that changes one still gets a new version of both, with
  one build id, which keeps "which code ran this order" a single answer).
* Build id: the package version (``orderflow`` 0.1.0 -> ``0.1.0``), which is also the
  image tag and the chart's appVersion (docs/releasing.md). A build from an
  unreleased tree must carry its own id (``0.2.0-dev.<commit>``): two different
  codes under one build id is exactly what versioning exists to prevent.
* Versioning behaviour, per workflow, PINNED for both:

  - ``OrderWorkflow``: an order lasts seconds (p99 about 4 s at 10 orders/s, plus
    its review window of 10 s), so pinning lets the old version drain in well under
    a minute and new code never replays an old order: a change to the workflow's
    commands needs no ``workflow.patched`` while the old version still runs. The
    exception is an order whose step was handed to server-side retries during an
    outage: it stays on its version for as long as the outage lasts (hours), so
    the old version must keep polling until it drained (the worker controller does
    that; the sunset is the version's drainage, never a fixed delay). Its activity
    tasks are pinned too.
  - ``ShippingWorkflow``: started by the order on the shipping task queue, which is
    another deployment's, so it starts on the shipping deployment's current version
    (not its parent's) and is pinned there (the test checks both). It lives seconds
    (one dispatch burst of at most 12 attempts), so the same reasoning holds.

  AUTO_UPGRADE would move running orders to the new version at their next task:
  every release would then need the replay gate to pass for its changes (it must
  anyway, for rollbacks and for unversioned installs), and would lose the point
  of versioning for short workflows. Kept for a later workflow that lives for days.
"""

from __future__ import annotations

from importlib.metadata import version

from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import WorkerDeploymentConfig

BEHAVIOUR: dict[str, VersioningBehavior] = {
    "OrderWorkflow": VersioningBehavior.PINNED,
    "ShippingWorkflow": VersioningBehavior.PINNED,
}


def build_id() -> str:
    return version("orderflow")


def deployment_name(prefix: str, kind: str) -> str:
    """``kind``: ``order-worker`` or ``shipping-worker``, as the chart names them."""
    return f"{prefix}-{kind}"


def deployment_config(
    prefix: str,
    kind: str,
    build: str | None = None,
    behaviour: VersioningBehavior | None = None,
) -> WorkerDeploymentConfig:
    """The worker's deployment version. Every workflow it runs is PINNED (``BEHAVIOUR``),
    set as the worker's default so workflow code needs no change for it (``behaviour``
    overrides it, for the test that shows why)."""
    if behaviour is None:
        # One behaviour for all today; a per-workflow one would go in @workflow.defn.
        (behaviour,) = set(BEHAVIOUR.values())
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(
            deployment_name=deployment_name(prefix, kind), build_id=build or build_id()
        ),
        use_worker_versioning=True,
        default_versioning_behavior=behaviour,
    )
