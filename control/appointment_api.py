"""HTTP handlers of appointments and their telemedicine links (routes in control/routes.py)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from aiohttp import web

from config.settings import Settings
from control import appointments, departments
from control.auth import authenticated_org
from control.bodies import is_id, path_id, query_int, read_body
from control.models import AppointmentCreate, AppointmentPatch, SendLinks
from control.notify import LinkError, MissingContact, cancel_links, delivery_status, queue_links
from control.problems import Problem, conflict, invalid
from control.services import services
from control.store import Record, Store
from control.times import iso_at

MAX_PAGE = 500
MAX_OFFSET = 10**9
DEFAULT_PAGE = 100


async def present(
    store: Store, settings: Settings, data: dict[str, Any], *, new: bool = False
) -> dict[str, Any]:
    """The API view of a stored appointment: adds the room's window and link delivery
    (``new``: just created, so nothing can have been sent for it yet: no outbox scan)."""
    tele = data["telemedicine"]
    if not tele:
        return data
    win = appointments.window(data, settings)
    tele = {k: v for k, v in tele.items() if k != "versions"}  # kept for control.join only
    return {
        **data,
        "telemedicine": {
            **tele,
            "join_url": appointments.client_url(tele),
            "token_url": tele["join_url"],
            "short_url": tele.get("short_url"),
            "valid_from": iso_at(win.opens),
            "valid_until": iso_at(win.closes),
            "delivery": {} if new else await delivery_status(store, data["id"]),
        },
    }


async def create_handler(request: web.Request) -> web.Response:
    org_id = await authenticated_org(request)
    body = await read_body(request, AppointmentCreate)
    svc = services(request)
    department = await departments.load(svc.store, body.department_id)
    if department is None or department["org_id"] != org_id:
        raise invalid("department_id", f"no department {body.department_id} in this organization")
    data, created = await appointments.create(
        svc.store, svc.settings, svc.keyring, org_id, department, body, svc.clock()
    )
    return web.json_response(
        await present(svc.store, svc.settings, data, new=created), status=201 if created else 200
    )


async def get_handler(request: web.Request) -> web.Response:
    org_id = await authenticated_org(request)
    svc = services(request)
    record = await appointments.load(svc.store, org_id, path_id(request, "appointment"))
    return web.json_response(await present(svc.store, svc.settings, record.data))


async def _with_department(request: web.Request, org_id: str) -> tuple[Record, dict[str, Any]]:
    """The org's appointment named in the path, and its department."""
    store = services(request).store
    record = await appointments.load(store, org_id, path_id(request, "appointment"))
    return record, await departments.get_department(store, org_id, record.data["department_id"])


async def update_handler(request: web.Request) -> web.Response:
    org_id = await authenticated_org(request)
    patch = await read_body(request, AppointmentPatch)
    svc = services(request)
    record, department = await _with_department(request, org_id)
    data = await appointments.update(
        svc.store, svc.settings, svc.keyring, org_id, record.id, patch, department, svc.clock()
    )
    versions = appointments.link_versions(data)
    if versions["guest"] != appointments.link_versions(record.data)["guest"]:
        # The old client's PIN and links are dead: what is still queued for them (the phone
        # number the clinic just corrected, say) must not go out.
        await cancel_links(svc.store, data["id"], reason="the client changed")
    if svc.bus is not None and versions != appointments.link_versions(record.data):
        # Members still in the room with a replaced identity leave it now (media_server/node).
        room_id = data["telemedicine"]["room_id"]
        await svc.bus.publish(
            f"room:{room_id}",
            {"type": "appointment.relinked", "room_id": room_id, "versions": versions},
        )
    return web.json_response(await present(svc.store, svc.settings, data))


async def cancel_handler(request: web.Request) -> web.Response:
    org_id = await authenticated_org(request)
    svc = services(request)
    data, newly = await appointments.cancel(
        svc.store, org_id, path_id(request, "appointment"), svc.clock()
    )
    if newly:
        await cancel_links(svc.store, data["id"])
        if svc.bus is not None and data["telemedicine"]:
            # Rooms in progress end now; joins are refused by the status check anyway.
            room_id = data["telemedicine"]["room_id"]
            await svc.bus.publish(
                f"room:{room_id}",
                {"type": "appointment.cancelled", "room_id": room_id, "appointment_id": data["id"]},
            )
    return web.json_response(await present(svc.store, svc.settings, data))


def _time_param(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        # An unencoded "+02:00" arrives as " 02:00" (a + in a query string is a space).
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise invalid(name, "must be an ISO 8601 time such as 2026-11-23T09:00:00Z") from exc
    if moment.tzinfo is None:
        raise invalid(name, "must carry a time zone (Z or +02:00)")
    return moment.timestamp()


async def list_handler(request: web.Request) -> web.Response:
    """?from=&to= (ISO times, on the start), ?provider_id=, ?limit=&offset=."""
    org_id = await authenticated_org(request)
    svc = services(request)
    lo = _time_param(request, "from", -math.inf)
    hi = _time_param(request, "to", math.inf)
    if hi < lo:
        raise invalid("to", "must not be before from")
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
    provider_id = request.query.get("provider_id") or None
    if provider_id is not None and not is_id(provider_id):
        raise invalid("provider_id", "must be a provider id (1 to 128 printable characters)")
    found = await appointments.list_range(svc.store, org_id, lo, hi, provider_id, limit, offset)
    return web.json_response(
        {
            "appointments": [await present(svc.store, svc.settings, a) for a in found],
            "next_offset": offset + len(found) if len(found) == limit else None,
        }
    )


async def send_handler(request: web.Request) -> web.Response:
    """Send (or resend) the client's links by SMS and/or email through the outbox."""
    org_id = await authenticated_org(request)
    body = await read_body(request, SendLinks)
    svc = services(request)
    record, department = await _with_department(request, org_id)
    data = record.data
    if data["status"] == "cancelled":
        raise conflict("appointment-cancelled", "the appointment is cancelled", field="status")
    if appointments.window(data, svc.settings).state(svc.clock()) == "closed":
        # Its PIN and links stopped working: the client would be sent dead ones.
        raise conflict(
            "appointment-over",
            "the appointment is over (its links stopped working pins.grace_minutes after its "
            "end); move it to a new time first",
            field="end",
        )
    if not department["telemedicine_enabled"]:
        raise conflict(
            "telemedicine-disabled",
            "telemedicine is turned off for this department",
            field="department.telemedicine_enabled",
        )
    if not data["telemedicine"]:
        # Telemedicine was switched on after this appointment was booked: give it a room now.
        data = await appointments.update(
            svc.store,
            svc.settings,
            svc.keyring,
            org_id,
            data["id"],
            AppointmentPatch(),
            department,
            svc.clock(),
        )
    try:
        queued = await queue_links(svc.store, svc.settings, data, department, list(body.channels))
    except MissingContact as exc:
        raise Problem(422, "missing-contact", str(exc), field=exc.field) from exc
    except LinkError as exc:
        raise conflict("links-refused", str(exc), field=exc.field) from exc
    current = await appointments.mark_links_sent(svc.store, org_id, data, svc.clock())
    # Cancelled or given a new client while these were queued, after that change failed the
    # messages queued before it: links that no longer work must not go out either.
    refusal = None
    if current["status"] == "cancelled":
        refusal = conflict("appointment-cancelled", "the appointment is cancelled", field="status")
    elif appointments.client_credentials(current) != appointments.client_credentials(data):
        refusal = conflict(
            "client-changed",
            "the client changed while these links were sent; send the new client's links",
            field="client",
        )
    if refusal is not None:
        await cancel_links(
            svc.store, data["id"], reason=refusal.detail, only={m["id"] for m in queued}
        )
        raise refusal
    data = current
    if svc.outbox_worker is not None:
        svc.outbox_worker.wake()
    return web.json_response(
        {"appointment": await present(svc.store, svc.settings, data), "queued": body.channels},
        status=202,
    )
