"""Thin activity wrappers around the shipping business functions (local activities,
several attempts a call: workers/attempts.py)."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from orderflow.models import DispatchInput, PrepareInput
from workers import attempts
from workers.attempts import Burst, Outcome
from workers.shipping import business


class ShippingActivities:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    @activity.defn(name="package_prepared")
    async def package_prepared(self, burst: Burst[PrepareInput]) -> Outcome[None]:
        return await attempts.run(
            burst, lambda prepare: business.package_prepared(self.db, prepare)
        )

    @activity.defn(name="carrier_dispatched")
    async def carrier_dispatched(self, burst: Burst[DispatchInput]) -> Outcome[str]:
        outcome = await attempts.run(
            burst, lambda dispatch: business.carrier_dispatched(self.db, dispatch)
        )
        if outcome.value is not None:
            activity.logger.info(
                "carrier dispatched",
                extra={"order_id": burst.arg.order_id, "tracking_number": outcome.value},
            )
        return outcome
