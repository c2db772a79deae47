"""The demo organization of the embedded default: created once, a fresh API key each start.

Keys are stored hashed, so the previous start's key cannot be shown again: each start revokes
it and prints a new one. The record ``meta/demo`` remembers which org, department and key.
"""

from __future__ import annotations

from dataclasses import dataclass

from control import auth, departments, orgs
from control.models import Contact, DepartmentCreate
from control.store import AlreadyExists, Store

KIND = "meta"
ID = "demo"


@dataclass(frozen=True)
class Demo:
    org_id: str
    department_id: str
    key_id: str
    api_key: str


async def ensure_demo(store: Store, now: float) -> Demo:
    record = await store.get(KIND, ID)
    if record is None:
        org, key_record, key = await orgs.create_org(store, "Demo clinic", now)
        department = await departments.create_department(
            store,
            org["id"],
            DepartmentCreate(
                name="Demo department",
                telemedicine_enabled=True,
                default_language="en",
                contact=Contact(name="Demo clinic", address="1 Example Street"),
            ),
            now,
        )
        data = {"org_id": org["id"], "department_id": department["id"], "key_id": key_record["id"]}
        try:
            await store.create(KIND, ID, data)
        except AlreadyExists:  # another node made one meanwhile: use theirs
            await auth.revoke_key(store, key_record["id"], now)
            return await ensure_demo(store, now)
        return Demo(org["id"], department["id"], key_record["id"], key)
    data = record.data
    await auth.revoke_key(store, data["key_id"], now)
    key_record, key = await auth.create_key(store, data["org_id"], now)
    await store.update(KIND, ID, dict(data, key_id=key_record["id"]), expect_version=record.version)
    return Demo(data["org_id"], data["department_id"], key_record["id"], key)
