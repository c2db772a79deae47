"""Organizations: the tenant. Everything else (departments, appointments, keys) is one org's."""

from __future__ import annotations

import uuid
from typing import Any

from control import auth
from control.store import Store
from control.times import iso_at

KIND = "org"


async def create_org(
    store: Store, name: str, now: float
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A new organization, its first API key's record and the key (shown once, stored hashed)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("name: must be 1 to 200 characters")
    org_id = "org_" + uuid.uuid4().hex[:16]
    org = {"id": org_id, "name": name, "created_at": iso_at(now)}
    await store.create(KIND, org_id, org)
    key_record, key = await auth.create_key(store, org_id, now)
    return org, key_record, key


async def get_org(store: Store, org_id: str) -> dict[str, Any] | None:
    record = await store.get(KIND, org_id)
    return None if record is None else record.data
