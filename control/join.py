"""Joining a room: by PIN (native apps), by token (the /j/ and /h/ pages), by short code (the
/v/ page: the appointment's current guest token), and the check the SFU's signaling runs on
every WebSocket join (``authorize_join``).

PIN answers never tell a wrong PIN from an expired, cancelled or not-yet-open one (one
generic 404), and control/ratelimit.py's budgets throttle guessing (the body is read first:
only PIN joins are throttled). A PIN holder may be a guesser (issue 12 item 10): its token
names nobody (the room's guard seats it as the appointment's client), and neither its join
answer nor its signaling (media_server/signaling.py) tells it the client's name; the clinic
and provider names and the time are told, so a real client knows it reached its clinic. A token holder is already authenticated, so token refusals say
what is wrong, in the language to show it in.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from config.settings import Settings
from control import appointments, departments, pins, shortlinks
from control.bodies import read_body
from control.clientaddr import client_key
from control.cluster import placement
from control.models import JoinRequest
from control.problems import Problem, retry_later
from control.ratelimit import Refused
from control.services import services
from control.store import Store
from control.times import iso_at
from control.tokens import Grant, TokenError, keyring_for

__all__ = ["Admission", "Audience", "Grant", "JoinRefused", "authorize_join", "register_room_guard"]


class JoinRefused(Exception):
    """``reason``: invalid | expired | revoked | cancelled | not-yet-open. ``extra`` goes into
    the problem answer (when the room is known: ``time_zone`` and ``clinic {name, phone}``, so
    the page shows local times and whom to contact)."""

    def __init__(self, reason: str, detail: str, *, language: str = "en", **extra: Any) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.language, self.extra = reason, detail, language, extra


@dataclass(frozen=True, slots=True)
class Audience:
    """How the room's pages speak to one party: language, the clinic's IANA time zone, and
    the clinic to contact (``{name, phone}``, phone None when unknown)."""

    language: str = "en"
    time_zone: str | None = None  # None: the reader's own (no department behind the room)
    clinic: dict[str, str | None] | None = None

    def extra(self) -> dict[str, Any]:
        fields = {"time_zone": self.time_zone, "clinic": self.clinic}
        return {k: v for k, v in fields.items() if v is not None}

    def refusal(self) -> dict[str, Any]:
        """JoinRefused's keyword arguments: the language and what the error page shows."""
        return {"language": self.language, **self.extra()}


@dataclass(frozen=True, slots=True)
class Admission:
    """A grant the room's owner accepted, with what the join page shows. ``kind`` is
    ``vet`` (an appointment for an animal), ``appointment`` or ``clinic`` (a virtual clinic
    visit): the page's header and icons follow it."""

    grant: Grant
    audience: Audience
    start: str
    end: str
    kind: str
    host_view: dict[str, str] | None = None


Guard = Callable[[Store, Settings, Grant, float], Awaitable[Admission]]


async def _audience(store: Store, appointment: dict[str, Any], role: str) -> Audience:
    department = await departments.load(store, appointment["department_id"]) or {}
    client_language = appointment["client"].get("language")
    language = (
        client_language
        if role == "guest" and client_language
        else department.get("default_language", "en")
    )
    contact = department.get("contact") or {}
    clinic = {
        "name": contact.get("name") or department.get("name", ""),
        "phone": contact.get("phone"),
    }
    return Audience(language, department.get("time_zone", "UTC"), clinic)


async def _appointment_guard(
    store: Store, settings: Settings, grant: Grant, now: float
) -> Admission:
    appointment = await appointments.by_room(store, grant.room_id)
    if appointment is None or appointment["id"] != grant.appointment_id:
        raise JoinRefused("invalid", "this link does not open any room")
    audience = await _audience(store, appointment, grant.role)
    said = audience.refusal()
    if grant.device is not None:
        # A PIN's token names nobody: its holder takes the seat of the appointment's client.
        grant = replace(grant, name=appointment["client"]["name"])
    if grant.version != appointments.link_version(appointment, grant.role):
        raise JoinRefused("revoked", "the clinic re-issued this link; use the newest one", **said)
    if appointment["status"] != "scheduled":
        raise JoinRefused("cancelled", "the appointment was cancelled", **said)
    win = appointments.window(appointment, settings)
    state = win.state(now)
    if state == "early":
        raise JoinRefused(
            "not-yet-open", "the room is not open yet", opens_at=iso_at(win.opens), **said
        )
    if state == "closed":
        raise JoinRefused("expired", "the appointment is over", **said)
    return _admitted(appointment, grant, audience)


def _admitted(appointment: dict[str, Any], grant: Grant, audience: Audience) -> Admission:
    """The admission of ``grant`` to ``appointment``'s room, once its checks passed."""
    host_view = None
    if grant.role == "host":
        host_view = {
            "client_name": appointment["client"]["name"],
            "patient_name": appointment["patient"]["name"],
            "patient_species": appointment["patient"]["species"],
            "start": appointment["start"],
            "end": appointment["end"],
        }
    kind = "vet" if appointment["patient"].get("species") else "appointment"
    return Admission(grant, audience, appointment["start"], appointment["end"], kind, host_view)


# Room id prefix -> the check of its owner. Other kinds of rooms (the virtual clinic's
# visits) register theirs with register_room_guard.
_GUARDS: dict[str, Guard] = {pins.ROOM_PREFIX: _appointment_guard}


def _by_window(grant: Grant) -> bool:
    """Whether the appointment's window, not the token's ``exp``, says when ``grant`` ends. An
    appointment's tokens expire when its window closed as they were issued; moved later, it
    keeps its links (README: new times alone keep the links already sent), so a token past
    its ``exp`` is judged by the window as the appointment has it now (_appointment_guard:
    version, status and window)."""
    return grant.room_id.startswith(pins.ROOM_PREFIX) and grant.appointment_id is not None


def register_room_guard(prefix: str, guard: Guard) -> None:
    _GUARDS[prefix] = guard


async def admit(store: Store, settings: Settings, token: str, now: float) -> Admission:
    try:
        grant = keyring_for(settings).verify_token(token, now=now)
    except TokenError as exc:
        if exc.reason == "expired" and exc.grant is not None and _by_window(exc.grant):
            return await _appointment_guard(store, settings, exc.grant, now)
        reason = "expired" if exc.reason == "expired" else "invalid"
        said: dict[str, Any] = {}
        if exc.grant is not None:
            appointment = await appointments.by_room(store, exc.grant.room_id)
            if appointment is not None:
                audience = await _audience(store, appointment, exc.grant.role)
                said = audience.refusal()
        raise JoinRefused(reason, str(exc), **said) from exc
    for prefix, guard in _GUARDS.items():
        if grant.room_id.startswith(prefix):
            return await guard(store, settings, grant, now)
    raise JoinRefused("invalid", "this link does not open any room")


async def authorize_join(
    store: Store, settings: Settings, token: str, *, now: float | None = None
) -> Grant:
    """Signature, expiry, and the room's owner still open: the grant, or JoinRefused."""
    return (await admit(store, settings, token, time.time() if now is None else now)).grant


# --- HTTP ---------------------------------------------------------------------------------

_TOKEN_PROBLEMS = {
    "invalid": (401, "token-invalid"),
    "expired": (410, "token-expired"),
    "revoked": (410, "token-revoked"),
    "cancelled": (410, "appointment-cancelled"),
    "not-yet-open": (403, "room-not-open"),
}

NO_ROOM = "no room with this PIN is open"
NO_WORKER_RETRY_SECONDS = 2


async def signaling_url(store: Store, room_id: str, clock: Callable[[], float]) -> str:
    """The signaling URL of the SFU worker holding ``room_id``, placing the room on the least
    loaded live worker if none holds it (control/cluster/placement.py). Problem 503 when no
    worker takes rooms."""
    try:
        return await placement.signaling_url(store, room_id, clock=clock)
    except placement.NoWorker as exc:
        raise retry_later(
            503,
            "no-media-server",
            "no media server is available; try again shortly",
            NO_WORKER_RETRY_SECONDS,
        ) from exc


async def _answer(
    store: Store, settings: Settings, admission: Admission, token: str, clock: Callable[[], float]
) -> dict[str, Any]:
    grant = admission.grant
    out: dict[str, Any] = {
        "room_id": grant.room_id,
        "token": token,
        "role": grant.role,
        "signaling_url": await signaling_url(store, grant.room_id, clock),
        "ice_servers": [s.model_dump(exclude_none=True) for s in settings.media.ice_servers],
        "appointment": {"start": admission.start, "end": admission.end},
        "reconnect_grace_seconds": settings.media.reconnect_grace_seconds,
        "kind": admission.kind,
        "language": admission.audience.language,
        **admission.audience.extra(),
    }
    if grant.device is None:  # a PIN's holder is not told whose seat it takes
        out["name"] = grant.name
    if admission.host_view is not None:
        out["host_view"] = admission.host_view
    return out


async def _by_pin(request: web.Request, pin: str, now: float) -> dict[str, Any]:
    """A lookup and a signature: the appointment holding the PIN, checked as the room guard
    checks it, and a fresh guest token for it. (Verifying the token just signed and reading
    the appointment again through its room, as a token join does, would only repeat this.)"""
    svc = services(request)
    typed = pins.typed_pin(pin, svc.settings.pins.digits)
    if typed is None:
        raise Problem(404, "no-room", NO_ROOM, field="pin")
    appointment = await appointments.by_pin(svc.store, typed)
    if appointment is None or appointment["status"] != "scheduled":
        raise Problem(404, "no-room", NO_ROOM, field="pin")
    win = appointments.window(appointment, svc.settings)
    if win.state(now) != "open":
        raise Problem(404, "no-room", NO_ROOM, field="pin")
    grant = Grant(
        room_id=appointment["telemedicine"]["room_id"],
        name="",  # see the module's docstring
        role="guest",
        appointment_id=appointment["id"],
        version=appointments.link_version(appointment, "guest"),
        expires_at=float(int(win.closes)),  # as the token carries it
        # Each PIN join is a device of its own: a second one is admitted by the clinic.
        device=secrets.token_hex(4),
    )
    token = svc.keyring.issue_token(
        room_id=grant.room_id,
        name=grant.name,
        role=grant.role,
        expires_at=win.closes,
        appointment_id=grant.appointment_id,
        version=grant.version,
        device=grant.device,
        now=now,
    )
    admission = _admitted(appointment, grant, await _audience(svc.store, appointment, "guest"))
    return await _answer(svc.store, svc.settings, admission, token, svc.clock)


async def _by_code(request: web.Request, text: str, now: float) -> dict[str, Any]:
    """A short link's code: the appointment's current guest token, then as a token."""
    store = services(request).store
    code = shortlinks.normalized(text)
    appointment = None if code is None else await appointments.by_short_code(store, code)
    if appointment is None:
        raise Problem(401, "token-invalid", "this link does not open any room")
    return await _by_token(request, appointments.guest_token(appointment), now)


async def _by_token(request: web.Request, token: str, now: float) -> dict[str, Any]:
    svc = services(request)
    try:
        admission = await admit(svc.store, svc.settings, token, now)
    except JoinRefused as exc:
        status, kind = _TOKEN_PROBLEMS[exc.reason]
        raise Problem(status, kind, exc.detail, language=exc.language, **exc.extra) from exc
    return await _answer(svc.store, svc.settings, admission, token, svc.clock)


async def join_handler(request: web.Request) -> web.Response:
    svc = services(request)
    body = await read_body(request, JoinRequest)
    now = svc.clock()
    # A token is signed and a short code has 60 random bits (10^-15 per guess at 1,000 live
    # codes): neither has anything to guess, so only PINs meet the guessing budgets.
    if body.token is not None:
        return web.json_response(await _by_token(request, body.token, now))
    if body.code is not None:
        return web.json_response(await _by_code(request, body.code, now))
    assert body.pin is not None
    try:
        admitted = await svc.limiter.admit(
            client_key(request, svc.settings.server.proxy_networks), now
        )
    except Refused as exc:
        raise retry_later(
            429, "rate-limited", "too many join attempts; wait and try again", exc.retry_after
        ) from exc
    try:
        return web.json_response(await _by_pin(request, body.pin, now))
    except Problem as exc:
        if exc.status == 404:
            await svc.limiter.failed(admitted, now)
        raise
