"""On-demand session requests: requested -> accepted | declined | expired | cancelled.

Record ``vc_request/<id>``. While a request is open, and after a decline or expiry until the
requester dismisses it, it holds the claim ``vc-open:<requester>:<provider>``: a requester has
at most one request per provider on their dashboard, and asks again only after dismissing the
answer (the product's rule, and the dashboard's), enforced by the store even across nodes.
An open request sits in the ``vcreq:due`` index scored by its deadline, which the sweeper (one per node, see sweeper.py) walks: the deadline lives in the
store, so a restart loses no request and expires it on time. Every transition is one
versioned write; two nodes racing (accept vs expiry) cannot both win.

A request to an unavailable provider is written already declined ("unavailable") and the
provider is not alerted. The requester's dashboard keeps declined and expired requests until
dismissed; the provider's inbox holds only open ones.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from control.clinic import visits
from control.clinic.accounts import Staff, staff_in_org, update_staff
from control.clinic.context import Clinic
from control.clinic.errors import Conflict, Forbidden, Invalid, Missing
from control.clinic.policy import get_policy
from control.clinic.records import mutate
from control.store import Record, UniqueConflict, VersionConflict

KIND = "vc_request"
OPEN = "requested"
STATES = (OPEN, "accepted", "declined", "expired", "cancelled")
NO_ANSWER, UNAVAILABLE, DECLINED, CANCELLED = "no answer", "unavailable", "declined", "cancelled"
DUE_INDEX = "vcreq:due"
UNVISITED_INDEX = "vcreq:unvisited"


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    org_id: str
    requester_id: str
    requester_name: str
    provider_id: str
    provider_name: str
    service: str | None
    state: str
    reason: str | None
    note: str | None
    created_at: float
    expires_at: float
    answered_at: float | None
    visit_id: str | None
    dismissed: bool
    version: int

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "org_id": self.org_id,
            "requester": {"id": self.requester_id, "name": self.requester_name},
            "provider": {"id": self.provider_id, "name": self.provider_name},
            "service": self.service,
            "state": self.state,
            "reason": self.reason,
            "note": self.note,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "answered_at": self.answered_at,
            "visit_id": self.visit_id,
            "dismissed": self.dismissed,
            "version": self.version,
        }


def _request(rec: Record) -> Request:
    d = rec.data
    return Request(
        rec.id, d["org_id"], d["requester_id"], d["requester_name"], d["provider_id"],
        d["provider_name"], d["service"], d["state"], d["reason"], d["note"], d["created_at"],
        d["expires_at"], d["answered_at"], d["visit_id"], d["dismissed"], rec.version,
    )  # fmt: skip


def _layout(data: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, float]]:
    """Claims and index memberships that follow from a request's data."""
    created, state = data["created_at"], data["state"]
    claims: tuple[str, ...] = ()
    indexes = {f"vcreq:org:{data['org_id']}": created}
    if state == OPEN:
        indexes[DUE_INDEX] = data["expires_at"]
        indexes[f"vcreq:provider:{data['provider_id']}"] = created
    if state in (OPEN, "declined", "expired") and not data["dismissed"]:
        claims = (f"vc-open:{data['requester_id']}:{data['provider_id']}",)
        indexes[f"vcreq:requester:{data['requester_id']}"] = created
    if state == "accepted" and not data["visit_made"]:
        indexes[UNVISITED_INDEX] = data["answered_at"]
    return claims, indexes


def _audience(r: Request) -> tuple[str, ...]:
    return (r.requester_id, r.provider_id)


async def create_request(
    clinic: Clinic, requester: Staff, provider_id: str, service: str | None = None
) -> Request:
    requester.require("request")
    provider = await staff_in_org(clinic.store, requester.org_id, provider_id, what="provider")
    if not provider.can("provide"):
        raise Missing(f"provider {provider_id} not found", field="provider_id")
    if provider.id == requester.id:
        raise Invalid(
            "provider_id: you cannot request a session with yourself", field="provider_id"
        )
    policy = await get_policy(clinic.store, requester.org_id)
    now = clinic.clock()
    available = provider.available
    data = {
        "org_id": requester.org_id,
        "requester_id": requester.id,
        "requester_name": requester.display_name,
        "provider_id": provider.id,
        "provider_name": provider.display_name,
        "service": policy.pick_service(service),
        "state": OPEN if available else "declined",
        "reason": None if available else UNAVAILABLE,
        "note": None,
        "created_at": now,
        "expires_at": now + clinic.settings.request_expiry_seconds,
        "answered_at": None if available else now,
        "visit_id": None,
        "visit_made": False,
        "dismissed": False,
    }
    claims, indexes = _layout(data)
    try:
        rec = await clinic.store.create(
            KIND, "rq_" + secrets.token_hex(8), data, claims=claims, indexes=indexes
        )
    except UniqueConflict as exc:
        held = await clinic.store.get(KIND, exc.holder_id)
        if held is not None and held.data["state"] != OPEN:
            raise Conflict(
                f"{provider.display_name} has answered your earlier request; dismiss that "
                "answer before asking again.",
                field="provider_id",
                request_id=exc.holder_id,
                state=held.data["state"],
            ) from exc
        raise Conflict(
            f"You already have an open request to {provider.display_name}; wait for the "
            "answer or cancel it.",
            field="provider_id",
            request_id=exc.holder_id,
            state=OPEN,
        ) from exc
    req = _request(rec)
    # An unavailable provider gets no alert: only the requester hears of the decline.
    audience = _audience(req) if available else (req.requester_id,)
    await clinic.events.emit(
        "request.created" if available else "request.declined",
        req.org_id,
        audience,
        request=req.public(),
    )
    return req


async def get_request(clinic: Clinic, staff: Staff, request_id: str) -> Request:
    """A request the caller is party to (or any of their organization's, for administrators)."""
    rec = await clinic.store.get(KIND, request_id)
    if rec is None or rec.data["org_id"] != staff.org_id:
        raise Missing(f"request {request_id} not found", field="request_id")
    req = _request(rec)
    if staff.id not in (req.requester_id, req.provider_id) and not staff.can("administer"):
        raise Forbidden(f"request {request_id} is not addressed to or made by you")
    return req


async def _transition(
    clinic: Clinic,
    staff: Staff,
    request_id: str,
    *,
    role: str,
    state: str,
    reason: str | None,
    note: str | None = None,
    visit_id: str | None = None,
) -> Request:
    """Move an open request to ``state`` on behalf of ``staff`` acting as ``role``."""
    now = clinic.clock()
    expired: list[Request] = []

    def change(rec: Record) -> tuple[dict[str, Any], tuple[str, ...], dict[str, float]]:
        d = rec.data
        if d["org_id"] != staff.org_id:
            raise Missing(f"request {request_id} not found", field="request_id")
        if role == "provider":
            staff.require("provide")
            if d["provider_id"] != staff.id:
                raise Forbidden(f"request {request_id} is addressed to another provider")
        elif d["requester_id"] != staff.id:
            raise Forbidden(f"request {request_id} was made by someone else")
        if d["state"] != OPEN:
            raise Conflict(
                f"request {request_id} is already {d['state']}", field="state", state=d["state"]
            )
        if now >= d["expires_at"]:
            expired.append(_request(rec))
            raise Conflict(
                f"request {request_id} is already expired", field="state", state="expired"
            )
        data = {**d, "state": state, "reason": reason, "note": note, "answered_at": now}
        if visit_id is not None:
            data["visit_id"] = visit_id
        return (data, *_layout(data))

    try:
        rec = await mutate(clinic.store, KIND, request_id, change, what="request")
    except Missing as exc:
        raise Missing(str(exc), field="request_id") from exc
    except Conflict:
        if expired:  # the deadline passed before the sweeper ran: record the expiry now
            await expire(clinic, request_id)
        raise
    req = _request(rec)
    await clinic.events.emit(f"request.{state}", req.org_id, _audience(req), request=req.public())
    return req


async def accept(clinic: Clinic, provider: Staff, request_id: str) -> tuple[Request, visits.Visit]:
    """Accept: the request closes and a visit (a room for both) is opened."""
    req = await _transition(
        clinic, provider, request_id, role="provider", state="accepted", reason=None,
        visit_id=visits.visit_id_for(request_id),
    )  # fmt: skip
    visit = await _open_visit(clinic, req)
    return req, visit


async def _open_visit(clinic: Clinic, req: Request) -> visits.Visit:
    visit = await visits.open_visit(clinic, req)

    def done(rec: Record) -> tuple[dict[str, Any], tuple[str, ...], dict[str, float]]:
        data = {**rec.data, "visit_made": True}
        return (data, *_layout(data))

    await mutate(clinic.store, KIND, req.id, done, what="request")
    return visit


async def decline(
    clinic: Clinic, provider: Staff, request_id: str, note: str | None = None
) -> Request:
    if note is not None:
        note = note.strip() or None
    if note is not None:
        if not (await get_policy(clinic.store, provider.org_id)).notes_enabled:
            raise Invalid("note: decline notes are not enabled for this organization", field="note")
        if len(note) > clinic.settings.decline_note_max_chars:
            raise Invalid(
                f"note: at most {clinic.settings.decline_note_max_chars} characters", field="note"
            )
    return await _transition(
        clinic, provider, request_id, role="provider", state="declined", reason=DECLINED, note=note
    )


async def cancel(clinic: Clinic, requester: Staff, request_id: str) -> Request:
    return await _transition(
        clinic, requester, request_id, role="requester", state="cancelled", reason=CANCELLED
    )


async def dismiss(clinic: Clinic, requester: Staff, request_id: str) -> Request:
    """The requester clears a declined / expired request from their dashboard."""

    def change(rec: Record) -> tuple[dict[str, Any], tuple[str, ...], dict[str, float]]:
        d = rec.data
        if d["org_id"] != requester.org_id:
            raise Missing(f"request {request_id} not found", field="request_id")
        if d["requester_id"] != requester.id:
            raise Forbidden(f"request {request_id} was made by someone else")
        if d["state"] not in ("declined", "expired"):
            raise Conflict(
                f"request {request_id} is {d['state']}; only declined or expired requests are "
                "dismissed",
                field="state",
                state=d["state"],
            )
        if d["dismissed"]:
            raise Conflict(f"request {request_id} is already dismissed", field="state")
        data = {**d, "dismissed": True}
        return (data, *_layout(data))

    req = _request(await mutate(clinic.store, KIND, request_id, change, what="request"))
    await clinic.events.emit(
        "request.dismissed", req.org_id, (req.requester_id,), request=req.public()
    )
    return req


async def expire(clinic: Clinic, request_id: str) -> Request | None:
    """Expire one open request whose deadline passed; None if it was answered meanwhile."""
    rec = await clinic.store.get(KIND, request_id)
    if rec is None or rec.data["state"] != OPEN or clinic.clock() < rec.data["expires_at"]:
        return None
    data = {**rec.data, "state": "expired", "reason": NO_ANSWER, "answered_at": clinic.clock()}
    try:
        rec = await clinic.store.update(KIND, request_id, data, expect_version=rec.version,
                                        claims=_layout(data)[0], indexes=_layout(data)[1])  # fmt: skip
    except VersionConflict:
        return None  # answered, cancelled or expired by another node in between
    req = _request(rec)
    await clinic.events.emit("request.expired", req.org_id, _audience(req), request=req.public())
    return req


async def sweep(clinic: Clinic, *, limit: int = 200) -> int:
    """Expire due requests and open visits a crash left unopened; returns how many expired."""
    now = clinic.clock()
    expired = 0
    for rec in await clinic.store.range(DUE_INDEX, hi=now, limit=limit):
        if await expire(clinic, rec.id) is not None:
            expired += 1
    for rec in await clinic.store.range(UNVISITED_INDEX, hi=now - 5, limit=limit):
        await _open_visit(clinic, _request(rec))
    return expired


async def set_availability(clinic: Clinic, provider: Staff, available: bool) -> Staff:
    """The dashboard toggle. Going unavailable declines every open request ("unavailable")."""
    provider.require("provide")
    staff = await update_staff(clinic.store, provider.id, available=available)
    await clinic.events.emit(
        "provider.availability", staff.org_id, None,
        provider={"id": staff.id, "name": staff.display_name, "available": staff.available},
    )  # fmt: skip
    if not available:
        for req in await provider_inbox(clinic, staff):
            try:
                await _transition(clinic, staff, req.id, role="provider", state="declined",
                                  reason=UNAVAILABLE)  # fmt: skip
            except Conflict:
                pass  # answered, cancelled or expired meanwhile: nothing left to decline
    return staff


async def provider_inbox(clinic: Clinic, provider: Staff) -> list[Request]:
    """Every open request to ``provider``, newest first (the top of the dashboard; at most
    one per requester, and one page of 500 had hidden the rest, undeclined when going away)."""
    recs = await clinic.store.every(f"vcreq:provider:{provider.id}")
    return [_request(r) for r in reversed(recs)]


async def requester_outbox(clinic: Clinic, requester: Staff) -> list[Request]:
    """Every open request and undismissed decline of the requester, newest first (at most
    one per provider)."""
    recs = await clinic.store.every(f"vcreq:requester:{requester.id}")
    return [_request(r) for r in reversed(recs)]


async def org_history(
    clinic: Clinic, org_id: str, *, limit: int = 100, offset: int = 0
) -> list[Request]:
    recs = await clinic.store.range(f"vcreq:org:{org_id}", limit=limit, offset=offset)
    return [_request(r) for r in recs]
