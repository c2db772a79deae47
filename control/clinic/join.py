"""Joining a visit's room: tokens for the web client, and the room guard the SFU's join check
(control/join.py authorize_join) runs for ``vc-`` rooms.

The provider joins as host, the requester as guest, with the same signed tokens and the same
room pages (``/h/<token>``, ``/j/<token>``) as scheduled appointments. A token opens the room
only while the visit is open: closing the visit shuts its links at once.
"""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from control import departments, join
from control.clinic import visits
from control.clinic.node import ClinicNode
from control.store import Store
from control.times import iso_at
from control.tokens import Grant, keyring_for

ROOM_PREFIX = visits.ROOM_PREFIX


def _token_ttl(settings: Settings) -> float:
    return settings.tokens.host_ttl_hours * 3600


async def join_for(node: ClinicNode, visit: visits.Visit, party: str) -> dict[str, Any]:
    """A join for ``party`` ("provider" or "requester") of an open visit."""
    settings = node.settings
    now = node.clinic.clock()
    role, name, page = (
        ("host", visit.provider_name, "h")
        if party == "provider"
        else ("guest", visit.requester_name, "j")
    )
    expires_at = now + _token_ttl(settings)
    token = keyring_for(settings).issue_token(
        room_id=visit.room_id, name=name, role=role, expires_at=expires_at, now=now
    )
    return {
        "role": role,
        "room_id": visit.room_id,
        "token": token,
        "url": f"{settings.server.base_url}/{page}/{token}",
        "signaling_url": await join.signaling_url(
            node.clinic.store, visit.room_id, node.clinic.clock
        ),
        "expires_at": expires_at,
    }


async def visit_guard(store: Store, settings: Settings, grant: Grant, now: float) -> join.Admission:
    visit = await visits.visit_for_room(store, grant.room_id)
    if visit is None:
        raise join.JoinRefused("invalid", "this link does not open any room")
    if visit.state != "open":
        raise join.JoinRefused("cancelled", "this virtual clinic session has ended")
    host_view = None
    if grant.role == "host":
        # A visit has a requester and maybe a service, no patient: the header says so.
        host_view = {
            "client_name": visit.requester_name,
            "service": visit.service or "",
            "start": iso_at(visit.created_at),
        }
    return join.Admission(
        grant,
        join.Audience(time_zone=await departments.org_time_zone(store, visit.org_id)),
        iso_at(visit.created_at),
        iso_at(grant.expires_at),
        "clinic",
        host_view,
    )


join.register_room_guard(ROOM_PREFIX, visit_guard)
