"""A room's session carried from a worker that died (or moved its calls away at a drain
deadline) to the worker its room is placed on next.

The holding worker keeps one ``sfu_session`` record per live room, written when members join
or leave (Room.snapshot: session id, times, members) and deleted when the session ends. The
next worker restores it (Room.restore) only when the room's placement names the writer as the
``previous`` worker, so a session that ended cleanly is never revived.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from control.store import Store
from control.store.base import AlreadyExists, NotFound, VersionConflict

KIND = "sfu_session"
ATTEMPTS = 3


class MemberRecord(BaseModel):
    id: str
    name: str
    role: str
    joined_at: str


class SessionRecord(BaseModel):
    room_id: str
    worker: str
    session: str
    waiting_since: str | None
    active_since: str | None
    members: list[MemberRecord]
    at: float  # when it was written (seconds since the epoch)


async def save(store: Store, room_id: str, worker_id: str, snapshot: dict[str, Any]) -> None:
    """Record ``snapshot`` (Room.snapshot) as ``worker_id``'s session of ``room_id``."""
    data = SessionRecord(room_id=room_id, worker=worker_id, at=time.time(), **snapshot)
    for _ in range(ATTEMPTS):
        record = await store.get(KIND, room_id)
        try:
            if record is None:
                await store.create(KIND, room_id, data.model_dump())
            else:
                await store.update(KIND, room_id, data.model_dump(), expect_version=record.version)
            return
        except (AlreadyExists, VersionConflict, NotFound):
            continue


async def forget(store: Store, room_id: str, worker_id: str) -> None:
    """Delete ``worker_id``'s session record of ``room_id`` (its session ended)."""
    record = await store.get(KIND, room_id)
    if record is None or record.data["worker"] != worker_id:
        return
    try:
        await store.delete(KIND, room_id, expect_version=record.version)
    except (NotFound, VersionConflict):
        pass


async def load(store: Store, room_id: str, worker_id: str) -> dict[str, Any] | None:
    """The snapshot ``worker_id`` left of ``room_id``, for Room.restore, or None."""
    record = await store.get(KIND, room_id)
    if record is None or record.data["worker"] != worker_id:
        return None
    saved = SessionRecord.model_validate(record.data)
    return saved.model_dump(include={"session", "waiting_since", "active_since", "members"})
