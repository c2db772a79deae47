"""HTTP handlers of the virtual clinic (routes are listed in control/routes.py).

Staff authenticate with ``Authorization: Bearer tvs_...`` (clinic software, apps) or the
``tv_staff`` cookie the login sets (the dashboards). The cookie is HttpOnly and SameSite=Lax,
so pages of other sites cannot make a signed-in browser change anything; the live events
socket also refuses a browser Origin other than this server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from control import departments
from control.auth import bearer_token, credential
from control.bodies import path_id, read_body
from control.clientaddr import client_key
from control.clinic import accounts, events, policy, requests, sessions, visits
from control.clinic.accounts import Staff
from control.clinic.errors import ClinicError, Forbidden, Unauthenticated
from control.clinic.join import join_for
from control.clinic.node import ClinicNode
from control.clinic.roomwatch import close_room
from control.clinic.schemas import (
    AcceptBody,
    AcceptOut,
    AvailabilityBody,
    DashboardOut,
    DeclineBody,
    Empty,
    EnterOut,
    LoginBody,
    LoginOut,
    MeOut,
    PolicyBody,
    PolicyEnvelope,
    ProvidersOut,
    RequestBody,
    RequestEnvelope,
    RequestsOut,
    StaffCreateBody,
    StaffEnvelope,
    StaffList,
    StaffPatchBody,
    StationsOut,
    VisitEnvelope,
    VisitsOut,
)  # fmt: skip
from control.clinic.sessions import Login
from control.mobile import devices
from control.problems import Problem

NODE = web.AppKey("clinic_node", ClinicNode)
COOKIE = "tv_staff"


def _node(request: web.Request) -> ClinicNode:
    return request.app[NODE]


def _token_of(request: web.Request) -> str:
    """The bearer token, else the dashboard's cookie ("" when neither)."""
    return bearer_token(request) or credential(request.cookies.get(COOKIE))


async def _who(request: web.Request) -> tuple[Login, Staff]:
    token = _token_of(request)
    node = _node(request)
    found = token and await sessions.resolve(node.clinic.store, token, now=node.clinic.clock())
    if not found:
        raise Unauthenticated("sign in first (POST /api/v1/clinic/login)")
    return found


async def signed_in(request: web.Request) -> Staff:
    """The staff member of the request's login (bearer token or the dashboard cookie);
    Unauthenticated (401) without one."""
    return (await _who(request))[1]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def handler(fn: Handler) -> Handler:
    """Raise the domain's refusals as Problem (the app's middleware answers problem+json)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except ClinicError as exc:
            raise Problem(exc.status, exc.kind, exc.detail, field=exc.field, **exc.extra) from exc

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


class LoginThrottle:
    """At most ``limit`` failed logins per client address per minute (password guessing)."""

    def __init__(self, limit: int = 10, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self.failures: dict[str, deque[float]] = {}

    def blocked(self, ip: str, now: float) -> float:
        q = self.failures.get(ip)
        while q and q[0] <= now - self.window:
            q.popleft()
        if q and len(q) >= self.limit:
            return q[0] + self.window - now
        return 0.0

    def failed(self, ip: str, now: float) -> None:
        if len(self.failures) > 10_000:
            self.failures.clear()  # bounded memory under a spray of addresses
        self.failures.setdefault(ip, deque()).append(now)


THROTTLE = web.AppKey("clinic_login_throttle", LoginThrottle)


def refuse_while_blocked(wait: float, what: str) -> None:
    """429 with Retry-After when a throttle says to wait ``wait`` seconds (> 0)."""
    if wait > 0:
        retry = int(wait) + 1
        raise Problem(
            429, "rate-limited", f"too many {what}; wait and try again",
            headers={"Retry-After": str(retry)}, retry_after=retry,
        )  # fmt: skip


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


# --- login -------------------------------------------------------------------------------


@handler
async def login(request: web.Request) -> web.Response:
    """Sign in a staff member; sets the dashboard cookie and returns a bearer token."""
    node = _node(request)
    throttle = request.app[THROTTLE]
    ip = client_key(request, node.settings.server.proxy_networks)
    now = time.monotonic()
    refuse_while_blocked(throttle.blocked(ip, now), "failed sign-ins")
    body = await read_body(request, LoginBody)
    staff = await accounts.authenticate(node.clinic.store, body.username, body.password)
    if staff is None:
        throttle.failed(ip, now)
        raise Unauthenticated("wrong user name or password", field="password")
    cfg = node.settings.clinic
    ttl = (cfg.station_days * 86400) if body.station else (cfg.login_hours * 3600)
    token, session = await sessions.open_login(
        node.clinic.store, staff, now=node.clinic.clock(), ttl_seconds=ttl, station=body.station
    )
    resp = _json({"token": token, "session": session.public(), "staff": staff.public()})
    resp.set_cookie(
        COOKIE, token, max_age=int(ttl), httponly=True, samesite="Lax", path="/",
        secure=node.settings.server.base_url.startswith("https://"),
    )  # fmt: skip
    return resp


@handler
async def logout(request: web.Request) -> web.Response:
    """End this session (the cookie's or the bearer token's)."""
    await _who(request)
    await sessions.close_login(_node(request).clinic.store, _token_of(request))
    resp = web.Response(status=204)
    resp.del_cookie(COOKIE, path="/")
    return resp


@handler
async def me(request: web.Request) -> web.Response:
    """The signed-in staff member, their session and the organization's clinic policy."""
    session, staff = await _who(request)
    store = _node(request).clinic.store
    pol = await policy.get_policy(store, staff.org_id)
    return _json(
        {
            "staff": staff.public(),
            "session": session.public(),
            "policy": pol.public(),
            "time_zone": await departments.org_time_zone(store, staff.org_id),
        }
    )


# --- dashboard ---------------------------------------------------------------------------


async def _providers(node: ClinicNode, staff: Staff) -> list[dict[str, Any]]:
    found = await accounts.list_staff(node.clinic.store, staff.org_id, providers_only=True)
    return [
        {"id": p.id, "name": p.display_name, "available": p.available}
        for p in found
        if p.id != staff.id
    ]


@handler
async def dashboard(request: web.Request) -> web.Response:
    """Everything one dashboard shows, in one answer (then follow /clinic/events)."""
    node = _node(request)
    staff = await signed_in(request)
    clinic = node.clinic
    out: dict[str, Any] = {
        "staff": staff.public(),
        "policy": (await policy.get_policy(clinic.store, staff.org_id)).public(),
        "visits": [v.public() for v in await visits.open_visits(clinic, staff)],
    }
    if staff.can("provide"):
        out["inbox"] = [r.public() for r in await requests.provider_inbox(clinic, staff)]
    if staff.can("request"):
        out["providers"] = await _providers(node, staff)
        out["outbox"] = [r.public() for r in await requests.requester_outbox(clinic, staff)]
    return _json(out)


@handler
async def list_providers(request: web.Request) -> web.Response:
    """Providers of the caller's organization with their availability."""
    staff = await signed_in(request)
    staff.require("request")
    return _json({"providers": await _providers(_node(request), staff)})


@handler
async def set_availability(request: web.Request) -> web.Response:
    """The provider's toggle; going unavailable declines open requests ("unavailable")."""
    staff = await signed_in(request)
    body = await read_body(request, AvailabilityBody)
    staff = await requests.set_availability(_node(request).clinic, staff, body.available)
    return _json({"staff": staff.public()})


# --- requests ----------------------------------------------------------------------------


@handler
async def create_request(request: web.Request) -> web.Response:
    """Request a session now with a provider (declined at once if they are unavailable)."""
    staff = await signed_in(request)
    body = await read_body(request, RequestBody)
    req = await requests.create_request(
        _node(request).clinic, staff, body.provider_id, body.service
    )
    return _json({"request": req.public()}, status=201)


@handler
async def list_requests(request: web.Request) -> web.Response:
    """The caller's open requests as provider (inbox) and as requester (outbox)."""
    staff = await signed_in(request)
    clinic = _node(request).clinic
    inbox = await requests.provider_inbox(clinic, staff) if staff.can("provide") else []
    outbox = await requests.requester_outbox(clinic, staff)
    return _json({"inbox": [r.public() for r in inbox], "outbox": [r.public() for r in outbox]})


@handler
async def get_request(request: web.Request) -> web.Response:
    staff = await signed_in(request)
    req = await requests.get_request(_node(request).clinic, staff, path_id(request, "request"))
    return _json({"request": req.public()})


async def _join(request: web.Request, visit: visits.Visit, party: str) -> dict[str, Any]:
    return await join_for(_node(request), visit, party)


@handler
async def accept_request(request: web.Request) -> web.Response:
    """Accept (opens a visit); with ``enter`` the answer carries the provider's join."""
    staff = await signed_in(request)
    body = await read_body(request, AcceptBody)
    req, visit = await requests.accept(_node(request).clinic, staff, path_id(request, "request"))
    out: dict[str, Any] = {"request": req.public(), "visit": visit.public()}
    if body.enter:
        out["join"] = await _join(request, visit, "provider")
    return _json(out)


@handler
async def decline_request(request: web.Request) -> web.Response:
    """Decline, with an optional note for the requester when notes are enabled."""
    staff = await signed_in(request)
    body = await read_body(request, DeclineBody)
    req = await requests.decline(
        _node(request).clinic, staff, path_id(request, "request"), body.note
    )
    return _json({"request": req.public()})


@handler
async def cancel_request(request: web.Request) -> web.Response:
    """The requester withdraws an open request."""
    staff = await signed_in(request)
    await read_body(request, Empty)
    req = await requests.cancel(_node(request).clinic, staff, path_id(request, "request"))
    return _json({"request": req.public()})


@handler
async def dismiss_request(request: web.Request) -> web.Response:
    """The requester clears a declined or expired request from their dashboard."""
    staff = await signed_in(request)
    await read_body(request, Empty)
    req = await requests.dismiss(_node(request).clinic, staff, path_id(request, "request"))
    return _json({"request": req.public()})


# --- visits ------------------------------------------------------------------------------


@handler
async def list_visits(request: web.Request) -> web.Response:
    """The caller's open visits with both parties' status."""
    staff = await signed_in(request)
    found = await visits.open_visits(_node(request).clinic, staff)
    return _json({"visits": [v.public() for v in found]})


@handler
async def get_visit(request: web.Request) -> web.Response:
    staff = await signed_in(request)
    visit = await visits.get_visit(_node(request).clinic, staff, path_id(request, "visit"))
    return _json({"visit": visit.public()})


@handler
async def enter_visit(request: web.Request) -> web.Response:
    """A join token and room link: "Enter waiting room" (requester) / "Enter meeting"."""
    staff = await signed_in(request)
    await read_body(request, Empty)
    visit, role = await visits.joinable_visit(
        _node(request).clinic, staff, path_id(request, "visit")
    )
    return _json({"visit": visit.public(), "join": await _join(request, visit, role)})


@handler
async def end_visit(request: web.Request) -> web.Response:
    """Close a visit (it leaves both dashboards)."""
    staff = await signed_in(request)
    await read_body(request, Empty)
    node = _node(request)
    visit = await visits.end_visit(node.clinic, staff, path_id(request, "visit"))
    await close_room(node.bus, visit.room_id)
    return _json({"visit": visit.public()})


# --- administration ----------------------------------------------------------------------


async def _admin(request: web.Request) -> Staff:
    staff = await signed_in(request)
    staff.require("administer")
    return staff


@handler
async def list_staff(request: web.Request) -> web.Response:
    admin = await _admin(request)
    found = await accounts.list_staff(_node(request).clinic.store, admin.org_id)
    return _json({"staff": [s.public() for s in found]})


@handler
async def create_staff(request: web.Request) -> web.Response:
    """Create an account in the administrator's organization."""
    admin = await _admin(request)
    body = await read_body(request, StaffCreateBody)
    staff = await accounts.create_staff(
        _node(request).clinic.store, admin.org_id, username=body.username,
        display_name=body.display_name, password=body.password, groups=body.groups,
    )  # fmt: skip
    return _json({"staff": staff.public()}, status=201)


@handler
async def update_staff(request: web.Request) -> web.Response:
    """Change groups, name, password or disable an account (its sessions end; a new password
    signs out its staff-app devices too)."""
    admin = await _admin(request)
    body = await read_body(request, StaffPatchBody)
    store = _node(request).clinic.store
    target = await accounts.staff_in_org(store, admin.org_id, path_id(request, "staff member"))
    staff = await accounts.update_staff(
        store, target.id, display_name=body.display_name, groups=body.groups,
        disabled=body.disabled, password=body.password,
    )  # fmt: skip
    if body.disabled or body.password is not None:
        await sessions.revoke_all(store, staff.id)
    if body.password is not None:
        await devices.revoke_every(store, staff, admin, now=_node(request).clinic.clock())
    return _json({"staff": staff.public()})


@handler
async def list_stations(request: web.Request) -> web.Response:
    """Dedicated stations signed in to the organization."""
    admin = await _admin(request)
    node = _node(request)
    found = await sessions.list_stations(node.clinic.store, admin.org_id, now=node.clinic.clock())
    return _json({"stations": [s.public() for s in found]})


@handler
async def revoke_session(request: web.Request) -> web.Response:
    """Sign out a dedicated station (or any session) of the organization."""
    admin = await _admin(request)
    node = _node(request)
    gone = await sessions.revoke(node.clinic.store, admin.org_id, path_id(request, "session"))
    await node.clinic.events.emit(
        "session.revoked", admin.org_id, (gone.staff_id,), session={"id": gone.id}
    )
    return web.Response(status=204)


@handler
async def get_policy(request: web.Request) -> web.Response:
    staff = await signed_in(request)
    pol = await policy.get_policy(_node(request).clinic.store, staff.org_id)
    return _json({"policy": pol.public()})


@handler
async def set_policy(request: web.Request) -> web.Response:
    """Decline notes on/off and the organization's account services."""
    admin = await _admin(request)
    body = await read_body(request, PolicyBody)
    node = _node(request)
    pol = await policy.set_policy(
        node.clinic.store, admin.org_id, notes_enabled=body.notes_enabled,
        services=body.services,
    )  # fmt: skip
    # Every signed-in dashboard of the organization (a station's service choice) follows.
    await node.clinic.events.emit("policy.updated", admin.org_id, None, policy=pol.public())
    return _json({"policy": pol.public()})


# --- live events -------------------------------------------------------------------------

SEEN_MAX = 256


def _same_host(origin: str, host: str) -> bool:
    """Whether an Origin header (RFC 6454: ``scheme://host[:port]``) names ``host``. Read
    without a URL parser: urllib's raises ValueError on a header such as ``http://[``."""
    _, sep, rest = origin.partition("://")
    return bool(sep) and rest == host


@handler
async def events_socket(request: web.Request) -> web.StreamResponse:
    """WebSocket of live dashboard events (the caller's, their organization's broadcasts, and
    for administrators every event of the organization). First frame: ``{"type": "hello",
    "staff": {...}}`` once subscribed, so a client that then loads /clinic/dashboard misses
    nothing. Then one JSON text frame per event, ``{"id", "type", ...}`` with ``type`` one of
    request.created, request.accepted, request.declined, request.expired,
    request.cancelled, request.dismissed, visit.opened, visit.updated, visit.ended,
    provider.availability, session.revoked (the socket then closes with 4001). Clients send
    nothing; a browser Origin other than this server's is refused (403)."""
    session, staff = await _who(request)
    token = _token_of(request)
    origin = request.headers.get("Origin")
    if origin and not _same_host(origin, request.host):
        raise Forbidden("this socket is for this server's own pages (Origin mismatch)")
    node = _node(request)
    topics = [events.staff_topic(staff.id), events.orgwide_topic(staff.org_id)]
    if staff.can("administer"):
        topics.append(events.org_topic(staff.org_id))
    # No permessage-deflate, which browsers offer and aiohttp accepts by default: its zlib
    # state (~180 kB) would stay for the life of every open dashboard, to save a few hundred
    # bytes an event (as the SFU's signaling socket, media_server/signaling.py COMPRESSION).
    ws = web.WebSocketResponse(heartbeat=25, compress=False)
    await ws.prepare(request)
    seen: deque[str] = deque(maxlen=SEEN_MAX)
    async with events.listen(node.bus, topics) as feed:
        await ws.send_json({"type": "hello", "staff": staff.public()})
        store, clock = node.clinic.store, node.clinic.clock

        async def signed_in_still() -> bool:
            return await sessions.resolve(store, token, now=clock()) is not None

        pump = asyncio.create_task(_pump(ws, feed, seen, signed_in_still))
        try:
            async for msg in ws:  # clients send nothing; reading notices the close
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
    return ws


async def _pump(
    ws: web.WebSocketResponse,
    feed: AsyncIterator[dict[str, Any]],
    seen: deque[str],
    signed_in_still: Callable[[], Awaitable[bool]],
) -> None:
    """Forward events while the socket's login holds: one revoked (this station's
    session.revoked), ended by a new password or a disabled account, or expired closes the
    socket (4001) at the next event instead of being sent it (a password change sends no
    event of its own: its sessions may be thousands)."""
    async for event in feed:
        if event["id"] in seen:
            continue  # heard on two topics
        seen.append(event["id"])
        if not await signed_in_still():
            await ws.close(code=4001, message=b"session revoked")
            return
        await ws.send_json(event)


# The rows control/routes.py adds to the one routes table: method, path under /api/v1,
# handler, request body, answer, success status, auth ("staff" = a login, None = public).
ROUTES = [
    ("POST", "/clinic/login", login, LoginBody, LoginOut, 200, None),
    ("POST", "/clinic/logout", logout, None, None, 204, "staff"),
    ("GET", "/clinic/me", me, None, MeOut, 200, "staff"),
    ("PUT", "/clinic/me/availability", set_availability, AvailabilityBody, StaffEnvelope, 200, "staff"),
    ("GET", "/clinic/dashboard", dashboard, None, DashboardOut, 200, "staff"),
    ("GET", "/clinic/events", events_socket, None, None, 101, "staff"),
    ("GET", "/clinic/providers", list_providers, None, ProvidersOut, 200, "staff"),
    ("GET", "/clinic/requests", list_requests, None, RequestsOut, 200, "staff"),
    ("POST", "/clinic/requests", create_request, RequestBody, RequestEnvelope, 201, "staff"),
    ("GET", "/clinic/requests/{id}", get_request, None, RequestEnvelope, 200, "staff"),
    ("POST", "/clinic/requests/{id}/accept", accept_request, AcceptBody, AcceptOut, 200, "staff"),
    ("POST", "/clinic/requests/{id}/decline", decline_request, DeclineBody, RequestEnvelope, 200, "staff"),
    ("POST", "/clinic/requests/{id}/cancel", cancel_request, Empty, RequestEnvelope, 200, "staff"),
    ("POST", "/clinic/requests/{id}/dismiss", dismiss_request, Empty, RequestEnvelope, 200, "staff"),
    ("GET", "/clinic/visits", list_visits, None, VisitsOut, 200, "staff"),
    ("GET", "/clinic/visits/{id}", get_visit, None, VisitEnvelope, 200, "staff"),
    ("POST", "/clinic/visits/{id}/enter", enter_visit, Empty, EnterOut, 200, "staff"),
    ("POST", "/clinic/visits/{id}/end", end_visit, Empty, VisitEnvelope, 200, "staff"),
    ("GET", "/clinic/staff", list_staff, None, StaffList, 200, "staff"),
    ("POST", "/clinic/staff", create_staff, StaffCreateBody, StaffEnvelope, 201, "staff"),
    ("PATCH", "/clinic/staff/{id}", update_staff, StaffPatchBody, StaffEnvelope, 200, "staff"),
    ("GET", "/clinic/stations", list_stations, None, StationsOut, 200, "staff"),
    ("DELETE", "/clinic/sessions/{id}", revoke_session, None, None, 204, "staff"),
    ("GET", "/clinic/policy", get_policy, None, PolicyEnvelope, 200, "staff"),
    ("PUT", "/clinic/policy", set_policy, PolicyBody, PolicyEnvelope, 200, "staff"),
]  # fmt: skip
