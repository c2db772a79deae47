"""Visits: the session an accepted request opens, with a room both parties join.

Record ``vc_visit/<id>`` (id derived from the request, so opening one is idempotent and a
crash between accepting and opening is repaired by the sweeper). The room id is a unique claim
``vc-room:<room>`` so join authorization and room events find the visit. Each party's status
("not_arrived" / "waiting" / "in_meeting" / "left") follows the SFU's room events.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from control.clinic.accounts import Staff
from control.clinic.context import Clinic
from control.clinic.errors import Conflict, Forbidden, Missing
from control.clinic.records import mutate
from control.store import AlreadyExists, Record, Store

if TYPE_CHECKING:
    from control.clinic.requests import Request

KIND = "vc_visit"
ROOM_PREFIX = "vc-"  # room ids of visits (appointments use "ap-")
ROOM_CLAIM = "vc-room:"
STATUSES = ("not_arrived", "waiting", "in_meeting", "left")


@dataclass(frozen=True, slots=True)
class Visit:
    id: str
    org_id: str
    request_id: str
    provider_id: str
    provider_name: str
    requester_id: str
    requester_name: str
    service: str | None
    room_id: str
    state: str  # open | ended
    created_at: float
    ended_at: float | None
    provider_status: str
    requester_status: str

    def role_of(self, staff_id: str) -> str | None:
        if staff_id == self.provider_id:
            return "provider"
        if staff_id == self.requester_id:
            return "requester"
        return None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "org_id": self.org_id,
            "request_id": self.request_id,
            "provider": {"id": self.provider_id, "name": self.provider_name,
                         "status": self.provider_status},
            "requester": {"id": self.requester_id, "name": self.requester_name,
                          "status": self.requester_status},
            "service": self.service,
            "room_id": self.room_id,
            "state": self.state,
            "created_at": self.created_at,
            "ended_at": self.ended_at,
        }  # fmt: skip


def _visit(rec: Record) -> Visit:
    d = rec.data
    return Visit(
        rec.id, d["org_id"], d["request_id"], d["provider_id"], d["provider_name"],
        d["requester_id"], d["requester_name"], d["service"], d["room_id"], d["state"],
        d["created_at"], d["ended_at"], d["provider_status"], d["requester_status"],
    )  # fmt: skip


def _layout(d: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, float]]:
    indexes = {f"vcvisit:org:{d['org_id']}": d["created_at"]}
    if d["state"] == "open":
        indexes[f"vcvisit:provider:{d['provider_id']}"] = d["created_at"]
        indexes[f"vcvisit:requester:{d['requester_id']}"] = d["created_at"]
    return (ROOM_CLAIM + d["room_id"],), indexes


def visit_id_for(request_id: str) -> str:
    return "vs_" + request_id.removeprefix("rq_")


async def open_visit(clinic: Clinic, req: Request) -> Visit:
    """Open the visit of an accepted request (once; later calls return the same visit)."""
    vid = visit_id_for(req.id)
    existing = await clinic.store.get(KIND, vid)
    if existing is not None:
        return _visit(existing)
    data = {
        "org_id": req.org_id,
        "request_id": req.id,
        "provider_id": req.provider_id,
        "provider_name": req.provider_name,
        "requester_id": req.requester_id,
        "requester_name": req.requester_name,
        "service": req.service,
        "room_id": ROOM_PREFIX + secrets.token_urlsafe(12),
        "state": "open",
        "created_at": clinic.clock(),
        "ended_at": None,
        "provider_status": "not_arrived",
        "requester_status": "not_arrived",
    }
    claims, indexes = _layout(data)
    try:
        rec = await clinic.store.create(KIND, vid, data, claims=claims, indexes=indexes)
    except AlreadyExists:
        got = await clinic.store.get(KIND, vid)
        assert got is not None  # created by a racing node; visits are never deleted
        return _visit(got)
    visit = _visit(rec)
    await clinic.events.emit(
        "visit.opened", visit.org_id, (visit.provider_id, visit.requester_id), visit=visit.public()
    )
    return visit


async def get_visit(clinic: Clinic, staff: Staff, visit_id: str) -> Visit:
    """A visit the caller takes part in (or any of their organization's, for administrators)."""
    rec = await clinic.store.get(KIND, visit_id)
    if rec is None or rec.data["org_id"] != staff.org_id:
        raise Missing(f"visit {visit_id} not found", field="visit_id")
    visit = _visit(rec)
    if visit.role_of(staff.id) is None and not staff.can("administer"):
        raise Forbidden(f"you do not take part in visit {visit_id}")
    return visit


async def visit_for_room(store: Store, room_id: str) -> Visit | None:
    rec = await store.get_by_claim(ROOM_CLAIM + room_id)
    return _visit(rec) if rec is not None and rec.kind == KIND else None


async def joinable_visit(clinic: Clinic, staff: Staff, visit_id: str) -> tuple[Visit, str]:
    """The open visit and the caller's role in it, for issuing a join token."""
    visit = await get_visit(clinic, staff, visit_id)
    role = visit.role_of(staff.id)
    if role is None:
        raise Forbidden(f"you do not take part in visit {visit_id}")
    if visit.state != "open":
        raise Conflict(f"visit {visit_id} has ended", field="state", state=visit.state)
    return visit, role


async def end_visit(clinic: Clinic, staff: Staff | None, visit_id: str) -> Visit:
    """Close a visit (a party closes it, or its room ended when ``staff`` is None)."""
    now = clinic.clock()

    def change(rec: Record) -> tuple[dict[str, Any], tuple[str, ...], dict[str, float]]:
        d = rec.data
        if staff is not None and d["org_id"] != staff.org_id:
            raise Missing(f"visit {visit_id} not found", field="visit_id")
        if staff is not None and staff.id not in (d["provider_id"], d["requester_id"]):
            raise Forbidden(f"you do not take part in visit {visit_id}")
        if d["state"] != "open":
            raise Conflict(f"visit {visit_id} has already ended", field="state", state=d["state"])
        data = {**d, "state": "ended", "ended_at": now}
        return (data, *_layout(data))

    visit = _visit(await mutate(clinic.store, KIND, visit_id, change, what="visit"))
    await clinic.events.emit(
        "visit.ended", visit.org_id, (visit.provider_id, visit.requester_id), visit=visit.public()
    )
    return visit


async def set_status(clinic: Clinic, room_id: str, role: str, status: str) -> Visit | None:
    """Record a party's presence in the room ("host" is the provider, "guest" the requester)."""
    visit = await visit_for_room(clinic.store, room_id)
    if visit is None or visit.state != "open":
        return None
    key = "provider_status" if role == "host" else "requester_status"
    if getattr(visit, key) == status:
        return visit

    def change(rec: Record) -> tuple[dict[str, Any], tuple[str, ...], dict[str, float]]:
        data = {**rec.data, key: status}
        return (data, *_layout(data))

    visit = _visit(await mutate(clinic.store, KIND, visit.id, change, what="visit"))
    await clinic.events.emit(
        "visit.updated", visit.org_id, (visit.provider_id, visit.requester_id), visit=visit.public()
    )
    return visit


async def open_visits(clinic: Clinic, staff: Staff) -> list[Visit]:
    """Every open visit of the caller (as provider and as requester), newest first."""
    found: dict[str, Visit] = {}
    for side in ("provider", "requester"):
        for rec in await clinic.store.every(f"vcvisit:{side}:{staff.id}"):
            found[rec.id] = _visit(rec)
    return sorted(found.values(), key=lambda v: v.created_at, reverse=True)


async def on_room_event(clinic: Clinic, event: dict[str, Any]) -> Visit | None:
    """Follow the SFU's room events (docs: media_server/room.py ``_emit``) for a visit's room.

    A guest (the requester) who joins while the provider is absent is "waiting" ("In waiting
    room" on the provider's dashboard); once both are in, both are "in_meeting". A party whose
    connection dropped (or who closed the page) is "away" for the reconnect grace, then "left",
    and whoever stays is "waiting" again; a room that ended because everyone left leaves both
    "left" (the visit stays open: they may enter again). A hang-up ends the consultation, and
    with it the visit.
    """
    room_id, type = event.get("room_id"), event.get("type")
    if not isinstance(room_id, str) or not room_id.startswith(ROOM_PREFIX):
        return None
    if type == "ended":
        if event.get("reason") == "left":  # everyone went: nobody is in the meeting any more
            await set_status(clinic, room_id, "host", "left")
            return await set_status(clinic, room_id, "guest", "left")
        if event.get("reason") != "hangup":
            return None  # a server stop or timeout: the parties may enter again
        visit = await visit_for_room(clinic.store, room_id)
        if visit is None or visit.state != "open":
            return None
        try:
            return await end_visit(clinic, None, visit.id)
        except Conflict:
            return None  # closed meanwhile (another node, or a party)
    participant = event.get("participant")
    role = participant.get("role") if isinstance(participant, dict) else None
    if role not in ("host", "guest"):
        return None
    if type == "participant_joined":
        status = "in_meeting" if event.get("state") == "active" else "waiting"
        visit = await set_status(clinic, room_id, role, status)
        if status == "in_meeting":  # the other party, already there, is now in the meeting too
            visit = await set_status(clinic, room_id, "guest" if role == "host" else "host", status)
        return visit
    if type in ("participant_reconnecting", "participant_left"):
        visit = await set_status(
            clinic, room_id, role, "away" if type == "participant_reconnecting" else "left"
        )
        other = "guest" if role == "host" else "host"
        key = "provider_status" if other == "host" else "requester_status"
        if visit is not None and getattr(visit, key) == "in_meeting":
            visit = await set_status(clinic, room_id, other, "waiting")
        return visit
    return None
