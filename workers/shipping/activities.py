"""Thin activity wrappers around the shipping business functions (local activities)."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from orderflow.models import DispatchInput, PrepareInput
from workers.errors import business_errors
from workers.shipping import business


class ShippingActivities:
    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    @activity.defn(name="package_prepared")
    async def package_prepared(self, prepare: PrepareInput) -> None:
        with business_errors():
            await business.package_prepared(self.db, prepare)

    @activity.defn(name="carrier_dispatched")
    async def carrier_dispatched(self, dispatch: DispatchInput) -> str:
        with business_errors():
            tracking = await business.carrier_dispatched(self.db, dispatch)
        activity.logger.info(
            "carrier dispatched",
            extra={"order_id": dispatch.order_id, "tracking_number": tracking},
        )
        return tracking
