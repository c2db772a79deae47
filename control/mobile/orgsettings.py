"""The organization setting "mobile app enabled" (record ``mobile_org/<org id>``), off until an
administrator turns it on. While off no login key is issued and no device syncs or writes."""

from __future__ import annotations

from control.clinic.records import Write, upsert
from control.mobile.errors import MobileDisabled
from control.store import Record, Store

KIND = "mobile_org"


async def is_enabled(store: Store, org_id: str) -> bool:
    rec = await store.get(KIND, org_id)
    return bool(rec and rec.data["enabled"])


async def require_enabled(store: Store, org_id: str) -> None:
    """MobileDisabled (403) unless the organization has the app on."""
    if not await is_enabled(store, org_id):
        raise MobileDisabled(
            "the mobile app is turned off for this organization (Settings > Organization)"
        )


async def set_enabled(store: Store, org_id: str, enabled: bool) -> bool:
    def make(rec: Record | None) -> Write | None:
        if rec is not None and rec.data["enabled"] == enabled:
            return None
        return {"enabled": enabled}, (), {}

    await upsert(store, KIND, org_id, make, what="mobile settings")
    return enabled
