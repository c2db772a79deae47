"""Departments of an organization and their telemedicine settings (kind ``department``).

Record: ``{id, org_id, name, telemedicine_enabled, default_language, time_zone,
contact {name, address, phone, email}}``; listed per org in the index ``depts:<org_id>``.
Records stored before a field existed are read with that field's default (``with_defaults``).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from control.auth import authenticated_org
from control.bodies import path_id, read_body
from control.models import DepartmentCreate, DepartmentPatch, given
from control.problems import conflict, not_found
from control.services import services
from control.store import Store, VersionConflict

KIND = "department"
_WRITE_ATTEMPTS = 5
# Fields added after departments were first stored, with the value an older record means.
_DEFAULTS = {"time_zone": "UTC"}


def with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """A stored department record as the current shape (older records lack later fields)."""
    return {**_DEFAULTS, **data}


async def load(store: Store, department_id: str) -> dict[str, Any] | None:
    """The department record of any org (callers check ``org_id``), or None."""
    record = await store.get(KIND, department_id)
    return None if record is None else with_defaults(record.data)


def org_index(org_id: str) -> str:
    return f"depts:{org_id}"


async def get_department(store: Store, org_id: str, department_id: str) -> dict[str, Any]:
    """The org's department, or 404 (another org's department does not exist for it)."""
    data = await load(store, department_id)
    if data is None or data["org_id"] != org_id:
        raise not_found(f"department {department_id}")
    return data


async def create_department(
    store: Store, org_id: str, body: DepartmentCreate, now: float
) -> dict[str, Any]:
    department_id = "dep_" + uuid.uuid4().hex[:16]
    data = {"id": department_id, "org_id": org_id, **body.model_dump(mode="json")}
    await store.create(KIND, department_id, data, indexes={org_index(org_id): now})
    return data


async def update_department(
    store: Store, org_id: str, department_id: str, patch: DepartmentPatch
) -> dict[str, Any]:
    changes = given(patch)
    for _ in range(_WRITE_ATTEMPTS):
        record = await store.get(KIND, department_id)
        if record is None or record.data["org_id"] != org_id:
            raise not_found(f"department {department_id}")
        data = {**with_defaults(record.data), **changes}
        try:
            await store.update(
                KIND, department_id, data, expect_version=record.version, indexes=record.indexes
            )
        except VersionConflict:
            continue
        return data
    raise conflict("concurrent-update", "the department kept changing meanwhile; try again")


async def list_departments(store: Store, org_id: str) -> list[dict[str, Any]]:
    return [with_defaults(r.data) for r in await store.every(org_index(org_id))]


async def org_time_zone(store: Store, org_id: str) -> str:
    """The IANA time zone of an organization's pages that belong to no one department (the
    virtual clinic's): its departments' zone, the first listed department's where they
    differ, UTC without departments."""
    page = await store.range(org_index(org_id), limit=1)
    return with_defaults(page[0].data)["time_zone"] if page else _DEFAULTS["time_zone"]


# --- HTTP ---------------------------------------------------------------------------------


async def create_handler(request: web.Request) -> web.Response:
    org_id = await authenticated_org(request)
    body = await read_body(request, DepartmentCreate)
    svc = services(request)
    data = await create_department(svc.store, org_id, body, svc.clock())
    return web.json_response(data, status=201)


async def get_handler(request: web.Request) -> web.Response:
    org_id = await authenticated_org(request)
    data = await get_department(services(request).store, org_id, path_id(request, "department"))
    return web.json_response(data)


async def update_handler(request: web.Request) -> web.Response:
    org_id = await authenticated_org(request)
    patch = await read_body(request, DepartmentPatch)
    data = await update_department(
        services(request).store, org_id, path_id(request, "department"), patch
    )
    return web.json_response(data)


async def list_handler(request: web.Request) -> web.Response:
    org_id = await authenticated_org(request)
    return web.json_response(
        {"departments": await list_departments(services(request).store, org_id)}
    )
