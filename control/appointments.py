"""Appointments (kind ``appointment``) and the telemedicine room each one carries.

Stored record (the notify and web code read this exact shape)::

    {id, org_id, department_id, external_id, start, end, provider {id, name},
     client {name, phone | null, email | null, language | null}, patient {name, species},
     status ("scheduled" | "cancelled"), created_at, updated_at,
     telemedicine: null | {room_id, pin, join_url, short_url, host_url, links_sent_at,
                           versions?: {guest, host}}}

``versions`` counts re-issues that replaced a role's identity (absent: both 0): a PATCH that
changes the client raises ``guest`` (and draws a new PIN: the old client knew the old one), one
that changes the provider raises ``host``. Tokens carry the version they were issued at and
control.join refuses older ones, so the links a re-issue replaces stop working, and so does
anything that resolves to them.

``short_url`` (``/v/<code>``, control/shortlinks.py) is what messages carry; a new client gets a
new code (the old one then names nothing), other re-issues keep it. Records made before it
existed lack it until their links are re-issued. The stored ``join_url`` is the token link
(``/j/<token>``); the API shows it as ``token_url`` and gives the link to send (client_url)
as ``join_url`` (control/appointment_api.py).

Claims: ``ext:<org>:<external_id>`` (idempotent create), ``room:<room_id>`` (the SFU finds
the appointment by room), ``short:<code>`` (the short link) and, while scheduled,
``pin:<pin>``. A PIN held by an appointment
whose window has closed is released when a new PIN collides with it, so PINs are unique among
usable rooms without a sweeper. Indexes: ``appt:<org>`` and ``appt:<org>:prov:<provider>``,
both scored by start time.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from config.settings import Settings
from control import pins, shortlinks
from control.mobile.feed import feed_index
from control.models import AppointmentCreate, AppointmentPatch, given
from control.pins import PIN_CLAIM, ROOM_CLAIM, Window
from control.problems import Problem, conflict, invalid, not_found
from control.store import Record, Store, UniqueConflict, VersionConflict
from control.times import epoch, iso, iso_at
from control.tokens import Keyring

KIND = "appointment"
# A fresh 9-digit PIN colliding even once is rare; twenty in a row means the space is full.
PIN_ATTEMPTS = 20
WRITE_ATTEMPTS = 5
# Fields of a create body that decide whether a repeated create is "the same".
SAME_FIELDS = ("department_id", "start", "end", "provider", "client", "patient")


def ext_claim(org_id: str, external_id: str) -> str:
    return f"ext:{org_id}:{external_id}"


def org_index(org_id: str) -> str:
    return f"appt:{org_id}"


def provider_index(org_id: str, provider_id: str) -> str:
    return f"appt:{org_id}:prov:{provider_id}"


def window(data: dict[str, Any], settings: Settings) -> Window:
    return Window.of(epoch(data["start"]), epoch(data["end"]), settings.pins)


def claims_of(data: dict[str, Any]) -> list[str]:
    claims = [ext_claim(data["org_id"], data["external_id"])]
    tele = data["telemedicine"]
    if tele:
        claims.append(ROOM_CLAIM + tele["room_id"])
        if tele.get("short_url"):
            claims.append(shortlinks.SHORT_CLAIM + shortlinks.code_of(tele["short_url"]))
        if data["status"] == "scheduled":
            claims.append(PIN_CLAIM + tele["pin"])
    return claims


def indexes_of(data: dict[str, Any]) -> dict[str, float]:
    start = epoch(data["start"])
    return {
        org_index(data["org_id"]): start,
        provider_index(data["org_id"], data["provider"]["id"]): start,
    }


def links(data: dict[str, Any], settings: Settings, keyring: Keyring, now: float) -> dict[str, str]:
    """Fresh client and host URLs, their tokens valid until the room closes; the client's
    short link stays, or is drawn when there is none (a new room, a new client)."""
    tele = data["telemedicine"]
    closes = window(data, settings).closes
    base = settings.server.base_url

    def token(name: str, role: str) -> str:
        return keyring.issue_token(
            room_id=tele["room_id"],
            name=name,
            role=role,
            expires_at=closes,
            appointment_id=data["id"],
            version=link_version(data, role),
            now=now,
        )

    return {
        "join_url": f"{base}/j/{token(data['client']['name'], 'guest')}",
        "short_url": tele.get("short_url") or shortlinks.url(base, shortlinks.new_code()),
        "host_url": f"{base}/h/{token(data['provider']['name'], 'host')}",
    }


def check_length(data: dict[str, Any], settings: Settings) -> None:
    """422 naming ``end`` unless the appointment ends after it starts and lasts at most
    ``pins.max_appointment_hours`` (an appointment from year 0105 to 2026 would keep its PIN
    live for the whole span)."""
    length = epoch(data["end"]) - epoch(data["start"])
    if length <= 0:
        raise invalid("end", "end must be after start")
    hours = settings.pins.max_appointment_hours
    if length > hours * 3600:
        raise invalid(
            "end", f"an appointment lasts at most {hours:g} hours (pins.max_appointment_hours)"
        )


def link_version(data: dict[str, Any], role: str) -> int:
    """The version of ``role``'s links that joins accept now (see ``versions`` above)."""
    return link_versions(data)[role]


def link_versions(data: dict[str, Any]) -> dict[str, int]:
    """{guest, host}: the link versions joins accept now (all 0 without a room)."""
    versions = (data["telemedicine"] or {}).get("versions", {})
    return {role: int(versions.get(role, 0)) for role in ("guest", "host")}


# Which role's identity each field is; changing it revokes that role's links.
_IDENTITY = {"client": "guest", "provider": "host"}


def _reissued(
    data: dict[str, Any], before: dict[str, Any], settings: Settings, keyring: Keyring, now: float
) -> dict[str, Any]:
    """``data``'s telemedicine with new links; roles whose identity changed get a new version
    (their old links stop working) and a changed client a new PIN."""
    tele = dict(data["telemedicine"])
    versions = dict(tele.get("versions", {}))
    for field, role in _IDENTITY.items():
        if data[field] != before[field]:
            versions[role] = versions.get(role, 0) + 1
    if versions:
        tele["versions"] = versions
    if data["client"] != before["client"]:
        # The client's credentials are new: the old PIN stops working and the links the old
        # client got are no longer "sent" (the clinic sends the new ones).
        tele["pin"] = pins.new_pin(settings.pins.digits)
        tele["links_sent_at"] = None
        tele["short_url"] = ""  # a new code: the old client's short link names nothing
    out = dict(data, telemedicine=tele)
    tele.update(links(out, settings, keyring, now))
    return out


def client_url(tele: dict[str, Any]) -> str:
    """The link the client is sent, from a stored ``telemedicine``: the short link, or the
    token link where the record has none (booked before short links). The short code
    resolves to the current guest token (by_short_code, guest_token), so it works exactly
    while that token does and stops with it (expiry, cancel, a new client)."""
    return tele.get("short_url") or tele["join_url"]


def guest_token(data: dict[str, Any]) -> str:
    """The client's current token: the last part of its ``join_url``."""
    return data["telemedicine"]["join_url"].rsplit("/", 1)[1]


def with_room(
    data: dict[str, Any], settings: Settings, keyring: Keyring, now: float
) -> dict[str, Any]:
    """The appointment with a new telemedicine room (room id, PIN, links)."""
    tele = {
        "room_id": pins.new_room_id(),
        "pin": pins.new_pin(settings.pins.digits),
        "join_url": "",
        "short_url": "",
        "host_url": "",
        "links_sent_at": None,
    }
    out = dict(data, telemedicine=tele)
    tele.update(links(out, settings, keyring, now))
    return out


async def _release_stale_pin(store: Store, holder_id: str, settings: Settings, now: float) -> bool:
    """Drop the PIN claim of an appointment whose room can no longer be used (True: done)."""
    record = await store.get(KIND, holder_id)
    if record is None or window(record.data, settings).state(now) != "closed":
        return False
    claims = [c for c in record.claims if not c.startswith(PIN_CLAIM)]
    try:
        await store.update(
            KIND,
            holder_id,
            record.data,
            expect_version=record.version,
            claims=claims,
            indexes=record.indexes,
        )
    except (VersionConflict, UniqueConflict):
        return False  # it changed meanwhile: the caller just picks another PIN
    return True


async def _write(
    store: Store, settings: Settings, data: dict[str, Any], existing: Record | None, now: float
) -> Record:
    """Create or update; on a PIN collision free the PIN if its holder's room has closed, else
    pick another PIN. A new room's PIN is shown nowhere before this write succeeds; an old
    room's PIN only collides after its own claim was released, when it no longer worked.
    A short code held by another appointment (60 random bits: practically never) is drawn
    again."""
    for _ in range(PIN_ATTEMPTS):
        try:
            if existing is None:
                return await store.create(
                    KIND,
                    data["id"],
                    data,
                    claims=claims_of(data),
                    indexes=indexes_of(data),
                    sequenced=feed_index(data["org_id"]),
                )
            return await store.update(
                KIND,
                data["id"],
                data,
                expect_version=existing.version,
                claims=claims_of(data),
                indexes=indexes_of(data),
                sequenced=feed_index(data["org_id"]),
            )
        except UniqueConflict as exc:
            if exc.claim.startswith(shortlinks.SHORT_CLAIM) and exc.holder_id != data["id"]:
                short = shortlinks.url(settings.server.base_url, shortlinks.new_code())
                data = dict(data, telemedicine=dict(data["telemedicine"], short_url=short))
                continue
            if not exc.claim.startswith(PIN_CLAIM) or exc.holder_id == data["id"]:
                raise
            if await _release_stale_pin(store, exc.holder_id, settings, now):
                continue  # the PIN is free now: take it
            tele = dict(data["telemedicine"], pin=pins.new_pin(settings.pins.digits))
            data = dict(data, telemedicine=tele)
    raise Problem(503, "pin-space-exhausted", "no free PIN found; raise pins.digits")


def _busy() -> Exception:
    return conflict("concurrent-update", "the appointment kept changing meanwhile; try again")


Result = TypeVar("Result")


async def _change(
    store: Store,
    org_id: str,
    appointment_id: str,
    change: Callable[[Record], Awaitable[Result]],
) -> Result:
    """``change`` the org's appointment as it is now; when another write came between its read
    and its versioned write (VersionConflict), read it again and retry, a bounded number of times."""
    for _ in range(WRITE_ATTEMPTS):
        record = await load(store, org_id, appointment_id)
        try:
            return await change(record)
        except VersionConflict:
            continue
    raise _busy()


def _without_missing_ids(fields: dict[str, Any]) -> dict[str, Any]:
    """A client or patient without the clinic's id is stored as before ids existed (so a
    repeated create of an older appointment still matches)."""
    for party in ("client", "patient"):
        if party in fields and fields[party].get("id") is None:
            fields[party] = {k: v for k, v in fields[party].items() if k != "id"}
    return fields


def _normalized(body: AppointmentCreate) -> dict[str, Any]:
    out = body.model_dump(mode="json")
    out["start"], out["end"] = iso(body.start), iso(body.end)
    return _without_missing_ids(out)


def _same_request(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(existing[f] == wanted[f] for f in SAME_FIELDS)


async def load(store: Store, org_id: str, appointment_id: str) -> Record:
    """The org's appointment record, or 404 (other orgs' appointments do not exist for it)."""
    record = await store.get(KIND, appointment_id)
    if record is None or record.data["org_id"] != org_id:
        raise not_found(f"appointment {appointment_id}")
    return record


async def create(
    store: Store,
    settings: Settings,
    keyring: Keyring,
    org_id: str,
    department: dict[str, Any],
    body: AppointmentCreate,
    now: float,
) -> tuple[dict[str, Any], bool]:
    """(appointment, created). Creating again with the same external_id and the same
    fields returns the first one (created False); different fields are a 409."""
    wanted = _normalized(body)
    check_length(wanted, settings)
    for _ in range(WRITE_ATTEMPTS):
        held = await store.get_by_claim(ext_claim(org_id, body.external_id))
        if held is not None:
            if not _same_request(held.data, wanted):
                raise conflict(
                    "external-id-conflict",
                    f"external_id {body.external_id!r} already names a different appointment",
                    field="external_id",
                )
            return held.data, False
        stamp = iso_at(now)
        data: dict[str, Any] = {
            "id": "apt_" + uuid.uuid4().hex[:16],
            "org_id": org_id,
            **wanted,
            "status": "scheduled",
            "created_at": stamp,
            "updated_at": stamp,
            "telemedicine": None,
        }
        if department["telemedicine_enabled"]:
            data = with_room(data, settings, keyring, now)
        try:
            record = await _write(store, settings, data, None, now)
        except UniqueConflict as exc:
            if exc.claim == ext_claim(org_id, body.external_id):
                continue  # a concurrent create with the same external_id won: compare with it
            raise
        return record.data, True
    raise _busy()


async def update(
    store: Store,
    settings: Settings,
    keyring: Keyring,
    org_id: str,
    appointment_id: str,
    patch: AppointmentPatch,
    department: dict[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """Apply ``patch``. New times or names re-issue the links (the room and PIN stay);
    ``department`` (when given and telemedicine is on there) adds a room if there is none."""
    changes = _without_missing_ids(given(patch))
    if patch.start is not None:
        changes["start"] = iso(patch.start)
    if patch.end is not None:
        changes["end"] = iso(patch.end)

    async def change(record: Record) -> dict[str, Any]:
        if record.data["status"] == "cancelled":
            raise conflict("appointment-cancelled", "a cancelled appointment cannot change")
        data = {**record.data, **changes, "updated_at": iso_at(now)}
        check_length(data, settings)
        if data["telemedicine"]:
            relinked = any(
                data[f] != record.data[f] for f in ("start", "end", "client", "provider")
            )
            if relinked:
                data = _reissued(data, record.data, settings, keyring, now)
        elif department is not None and department["telemedicine_enabled"]:
            data = with_room(data, settings, keyring, now)
        return (await _write(store, settings, data, record, now)).data

    return await _change(store, org_id, appointment_id, change)


async def cancel(
    store: Store, org_id: str, appointment_id: str, now: float
) -> tuple[dict[str, Any], bool]:
    """(appointment, newly cancelled). Releases the PIN; joins check the status, so links,
    tokens and the PIN stop working at once."""

    async def change(record: Record) -> tuple[dict[str, Any], bool]:
        if record.data["status"] == "cancelled":
            return record.data, False
        data = dict(record.data, status="cancelled", updated_at=iso_at(now))
        await store.update(
            KIND,
            appointment_id,
            data,
            expect_version=record.version,
            claims=claims_of(data),
            indexes=indexes_of(data),
            sequenced=feed_index(org_id),
        )
        return data, True

    return await _change(store, org_id, appointment_id, change)


async def ensure_room(
    store: Store, settings: Settings, keyring: Keyring, org_id: str, appointment_id: str, now: float
) -> dict[str, Any]:
    """The appointment with its telemedicine room, adding one if it has none (telemedicine
    was switched on for the department after the appointment was booked)."""

    async def change(record: Record) -> dict[str, Any]:
        if record.data["telemedicine"]:
            return record.data
        data = with_room(dict(record.data, updated_at=iso_at(now)), settings, keyring, now)
        return (await _write(store, settings, data, record, now)).data

    return await _change(store, org_id, appointment_id, change)


def client_credentials(data: dict[str, Any]) -> tuple[str, int]:
    """What a client's message carries that a new client replaces: the PIN and the version of
    the guest links (the short link follows the version)."""
    return data["telemedicine"]["pin"], link_version(data, "guest")


async def mark_links_sent(
    store: Store, org_id: str, sent: dict[str, Any], now: float
) -> dict[str, Any]:
    """The appointment with ``links_sent_at`` set, if its client still holds the PIN and links
    that ``sent`` (the appointment as the messages were queued from) carried. A change of
    client in between re-issued them (and cleared ``links_sent_at``): those were never sent,
    and the clinic is left to send them."""

    async def change(record: Record) -> dict[str, Any]:
        current = record.data
        if current["status"] != "scheduled":
            return current
        if client_credentials(current) != client_credentials(sent):
            return current
        tele = dict(current["telemedicine"], links_sent_at=iso_at(now))
        data = dict(current, telemedicine=tele, updated_at=iso_at(now))
        await store.update(
            KIND,
            sent["id"],
            data,
            expect_version=record.version,
            claims=record.claims,
            indexes=record.indexes,
        )
        return data

    return await _change(store, org_id, sent["id"], change)


async def list_range(
    store: Store,
    org_id: str,
    lo: float,
    hi: float,
    provider_id: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    index = provider_index(org_id, provider_id) if provider_id else org_index(org_id)
    return [r.data for r in await store.range(index, lo, hi, limit=limit, offset=offset)]


async def _holder(store: Store, claim: str) -> dict[str, Any] | None:
    record = await store.get_by_claim(claim)
    return None if record is None or record.kind != KIND else record.data


async def by_room(store: Store, room_id: str) -> dict[str, Any] | None:
    return await _holder(store, ROOM_CLAIM + room_id)


async def by_short_code(store: Store, code: str) -> dict[str, Any] | None:
    """The appointment whose current short link is ``/v/<code>`` (a normalized code)."""
    return await _holder(store, shortlinks.SHORT_CLAIM + code)


async def by_pin(store: Store, pin: str) -> dict[str, Any] | None:
    return await _holder(store, PIN_CLAIM + pin)
