"""HTTP handlers of the staff mobile app's API (rows in control/routes.py, tag ``mobile``).

Three callers: clinic software with the organization's API key (pushes records, pulls and
acknowledges submissions), signed-in staff (the organization setting, login keys, devices;
the dashboard cookie or a ``tvs_`` token) and the app itself with its device token
(``Authorization: Bearer tvm_...``). Refusals are problem+json naming the field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from control.auth import authenticated_org, bearer_token
from control.bodies import path_id, query_int, read_body
from control.clientaddr import client_key
from control.clinic import accounts
from control.clinic.api import handler, signed_in
from control.mobile import devices, loginkeys, notes, orgsettings, records, scans, submissions
from control.mobile.schemas import (
    AckBody,
    ClientIn,
    ConsultationIn,
    DeviceLoginBody,
    HistoryIn,
    MobileSettingsBody,
    NoteBody,
    PatientIn,
    ScanBody,
    StockItemIn,
)
from control.mobile.submissions import Writer
from control.mobile.sync import sync as sync_payload
from control.problems import invalid, retry_later
from control.ratelimit import JoinLimiter, Refused
from control.services import Services, services
from control.times import iso_at

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LIMITER = web.AppKey("mobile_key_limiter", JoinLimiter)
MAX_PAGE = 500


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _wake(svc: Services, created: bool) -> None:
    if created and svc.outbox_worker is not None and svc.settings.mobile.webhook_url:
        svc.outbox_worker.wake()


# --- clinic software: records --------------------------------------------------------------


def _put(kind: records.Kind, model: type[BaseModel], name: str) -> Handler:
    async def put(request: web.Request) -> web.Response:
        org_id = await authenticated_org(request)
        body = await read_body(request, model)
        svc = services(request)
        data, created = await records.put(
            svc.store, kind, org_id, path_id(request, kind.name), body.model_dump(mode="json"),
            now=svc.clock(),
        )  # fmt: skip
        return _json(data, 201 if created else 200)

    put.__name__ = f"put_{name}"
    put.__doc__ = f"Create or replace a {kind.name} by the clinic's own id (idempotent)"
    return handler(put)


put_client = _put(records.CLIENT, ClientIn, "client")
put_patient = _put(records.PATIENT, PatientIn, "patient")
put_history = _put(records.HISTORY, HistoryIn, "history")
put_consultation = _put(records.CONSULTATION, ConsultationIn, "consultation")
put_stock = _put(records.STOCK, StockItemIn, "stock")


@handler
async def list_submissions(request: web.Request) -> web.Response:
    """Notes and stock scans staff wrote, oldest first, until acknowledged."""
    org_id = await authenticated_org(request)
    limit = query_int(request, "limit", 100, 1, MAX_PAGE)
    found, more = await submissions.pending(services(request).store, org_id, limit)
    return _json({"submissions": found, "more": more})


@handler
async def ack_submissions(request: web.Request) -> web.Response:
    """Acknowledge submissions: they leave the pending list (again is harmless)."""
    org_id = await authenticated_org(request)
    body = await read_body(request, AckBody)
    svc = services(request)
    done, unknown = await submissions.acknowledge(svc.store, org_id, body.ids, now=svc.clock())
    return _json({"acknowledged": done, "unknown": unknown})


# --- staff: the organization setting, login keys, devices ----------------------------------


@handler
async def get_settings(request: web.Request) -> web.Response:
    """Whether the organization has the mobile app enabled."""
    staff = await signed_in(request)
    return _json({"enabled": await orgsettings.is_enabled(services(request).store, staff.org_id)})


@handler
async def put_settings(request: web.Request) -> web.Response:
    """Enable or disable the mobile app for the organization (administrators)."""
    staff = await signed_in(request)
    staff.require("administer")
    body = await read_body(request, MobileSettingsBody)
    enabled = await orgsettings.set_enabled(services(request).store, staff.org_id, body.enabled)
    return _json({"enabled": enabled})


@handler
async def create_login_key(request: web.Request) -> web.Response:
    """Show login credentials: a new one-time key for the app (replaces the previous one)."""
    staff = await signed_in(request)
    staff.require("mobile")
    svc = services(request)
    await orgsettings.require_enabled(svc.store, staff.org_id)
    key = await loginkeys.issue(
        svc.store, staff, now=svc.clock(), ttl_seconds=svc.settings.mobile.login_key_minutes * 60
    )
    return _json(
        {
            "key": key.key,
            "expires_at": iso_at(key.expires_at),
            "app_url": f"{svc.settings.server.base_url}/staff/",
        },
        201,
    )


async def _names(svc: Services, org_id: str) -> dict[str, str]:
    return {s.id: s.display_name for s in await accounts.list_staff(svc.store, org_id)}


@handler
async def my_devices(request: web.Request) -> web.Response:
    """The signed-in user's devices with their last sync."""
    staff = await signed_in(request)
    staff.require("mobile")
    found = await devices.listed(services(request).store, devices.staff_index(staff.id))
    return _json({"devices": [dict(d.public(), staff_name=staff.display_name) for d in found]})


@handler
async def org_devices(request: web.Request) -> web.Response:
    """Every device of the organization with its user and last sync (administrators)."""
    staff = await signed_in(request)
    staff.require("administer")
    svc = services(request)
    found = await devices.listed(svc.store, devices.org_index(staff.org_id))
    names = await _names(svc, staff.org_id)
    return _json({"devices": [dict(d.public(), staff_name=names.get(d.staff_id)) for d in found]})


@handler
async def revoke_device(request: web.Request) -> web.Response:
    """Sign a device out (its user or an administrator): its next call gets 401."""
    staff = await signed_in(request)
    svc = services(request)
    await devices.revoke(svc.store, path_id(request, "device"), staff, now=svc.clock())
    return web.Response(status=204)


# --- the app -------------------------------------------------------------------------------


async def _writer(request: web.Request) -> Writer:
    device, staff = await devices.authorize(services(request).store, bearer_token(request))
    return Writer(staff, device)


def _brief(writer: Writer) -> dict[str, Any]:
    return {
        "device": dict(writer.device.public(), staff_name=writer.staff.display_name),
        "staff": {"id": writer.staff.id, "display_name": writer.staff.display_name},
    }


@handler
async def device_login(request: web.Request) -> web.Response:
    """Exchange a one-time login key for this device's token (guessing is throttled)."""
    svc = services(request)
    limiter = request.app[LIMITER]
    now = svc.clock()
    try:
        admitted = await limiter.admit(client_key(request, svc.settings.server.proxy_networks), now)
    except Refused as exc:
        raise retry_later(
            429, "rate-limited", "too many wrong login keys; wait and try again", exc.retry_after
        ) from exc
    body = await read_body(request, DeviceLoginBody)
    try:
        staff_id, org_id, credential = await loginkeys.redeem(svc.store, body.key, now=now)
    except loginkeys.InvalidKey:
        await limiter.failed(admitted, now)
        raise
    staff = await accounts.get_staff(svc.store, staff_id)
    # A key shown before the password changed is as dead as the sessions of then.
    if staff is None or staff.disabled or credential not in (None, staff.credential):
        raise loginkeys.InvalidKey()
    staff.require("mobile")
    await orgsettings.require_enabled(svc.store, org_id)
    token, device = await devices.register(svc.store, staff, body.name, now=svc.clock())
    return _json({"token": token, **_brief(Writer(staff, device))}, 201)


@handler
async def device_me(request: web.Request) -> web.Response:
    """This device and its user (401 once signed out, 403 while the app is off)."""
    return _json(_brief(await _writer(request)))


@handler
async def device_sign_out(request: web.Request) -> web.Response:
    """Sign this device out (its token stops working)."""
    writer = await _writer(request)
    svc = services(request)
    await devices.revoke(svc.store, writer.device.id, writer.staff, now=svc.clock())
    return web.Response(status=204)


def _etag(cursor: str) -> str:
    return f'"{cursor}"'


@handler
async def sync(request: web.Request) -> web.StreamResponse:
    """The agenda of yesterday, today and tomorrow with what it refers to; with the last
    answer's cursor (?cursor= or If-None-Match), only what changed, or 304."""
    writer = await _writer(request)
    svc = services(request)
    etag = request.headers.get("If-None-Match", "").removeprefix("W/").strip('"')
    cursor = request.query.get("cursor") or etag
    if len(cursor) > 64:
        raise invalid("cursor", "not a cursor this server gave")
    now = svc.clock()
    answer = await sync_payload(svc.store, writer.org_id, cursor or None, now=now)
    await devices.touch(svc.store, writer.device, now)
    headers = {"Cache-Control": "no-store"}
    if answer is None:
        return web.Response(status=304, headers={**headers, "ETag": _etag(cursor)})
    resp = web.json_response(answer, headers={**headers, "ETag": _etag(answer["cursor"])})
    resp.enable_compression()
    return resp


@handler
async def save_note(request: web.Request) -> web.Response:
    """Create or edit a preliminary note (409 with the current note if it changed elsewhere)."""
    writer = await _writer(request)
    body = await read_body(request, NoteBody)
    svc = services(request)
    sub, created = await notes.save(
        svc.store, svc.settings, writer, path_id(request, "note"), body, now=svc.clock()
    )
    _wake(svc, created)
    new_note = created and sub["note"]["version"] == 1
    return _json({"submission_id": sub["id"], "note": sub["note"]}, 201 if new_note else 200)


@handler
async def scan_stock(request: web.Request) -> web.Response:
    """Add a scanned quantity of a stock item to the inventory."""
    writer = await _writer(request)
    body = await read_body(request, ScanBody)
    svc = services(request)
    sub, created = await scans.record(svc.store, svc.settings, writer, body, now=svc.clock())
    _wake(svc, created)
    return _json({"submission_id": sub["id"], "scan": sub["scan"]}, 201 if created else 200)
