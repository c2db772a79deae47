"""The SFU worker: one per process, owns the live rooms of this process and reports its load.

A room is created on its first join and forgotten once it ends; a join after that (inside the
appointment window) creates a new Room, i.e. a new session. Control planes place rooms on the
least loaded worker using ``load()``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import Any

from config.settings import MediaSettings
from media_server import metrics
from media_server.participant import Participant
from media_server.room import (
    Channel,
    Grant,
    Member,
    ParticipantFactory,
    Room,
    RoomError,
    RoomEventSink,
)
from media_server.transcoder import Transcoders

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Load:
    rooms: int
    participants: int


class Worker:
    def __init__(
        self,
        settings: MediaSettings,
        *,
        participant_factory: ParticipantFactory = Participant,
        on_event: RoomEventSink | None = None,
    ) -> None:
        self.settings = settings
        self.rooms: dict[str, Room] = {}
        self.sessions_started = 0
        self.sessions_ended: collections.Counter[str] = collections.Counter()
        # Signaling errors by protocol error code (read by metrics at scrape time).
        self.signaling_errors: collections.Counter[str] = collections.Counter()
        # Session-layer events of every room (room.counters).
        self.counters: collections.Counter[str] = collections.Counter()
        # Peer connections not closed yet, and the summed counters of the closed ones.
        self.live_participants: set[Participant] = set()
        self.retired: collections.Counter[tuple[str, tuple[str, ...]]] = collections.Counter()
        # The only decoders in this process: the running transcoders (``transcoders.running``).
        self.transcoders = Transcoders(settings.transcode_max_per_worker)
        self._participant_factory = participant_factory
        self._on_event = on_event
        self._closing: set[asyncio.Task[None]] = set()

    def room(self, room_id: str) -> Room:
        """The live session of ``room_id``, started if there is none."""
        room = self.rooms.get(room_id)
        if room is None:
            room = Room(
                room_id,
                self.settings,
                participant_factory=self._new_participant,
                on_ended=self._ended,
                on_closed=self._retire,
                on_event=self._on_event,
                counters=self.counters,
                transcoders=self.transcoders,
            )
            self.rooms[room_id] = room
            self.sessions_started += 1
        return room

    def resume(self, room_id: str, snapshot: dict[str, Any]) -> Room:
        """Start ``room_id`` as the continuation of a session another worker held
        (Room.restore); a room already live here stays as it is."""
        room = self.rooms.get(room_id)
        if room is None:
            room = self.room(room_id)
            room.restore(snapshot)
        return room

    def join(
        self,
        grant: Grant,
        channel: Channel,
        *,
        admitted: bool = False,
        capabilities: dict[str, Any] | None = None,
    ) -> tuple[Room, Member, bool]:
        """Admit a connection to its grant's live session (started if none); a session that
        a refused first join started is forgotten again. Raises RoomError or
        admission.AdmissionNeeded (see Room.join)."""
        room = self.room(grant.room_id)
        try:
            member, resumed = room.join(
                grant, channel, admitted=admitted, capabilities=capabilities
            )
        except RoomError:
            if not room.members and self.rooms.get(room.id) is room:
                del self.rooms[room.id]
            raise
        return room, member, resumed

    def end_room(self, room_id: str, reason: str) -> bool:
        """End a live session from outside (appointment cancelled); False if none is live."""
        room = self.rooms.get(room_id)
        if room is None:
            return False
        room.end(reason)
        return True

    def load(self) -> Load:
        return Load(
            rooms=len(self.rooms),
            participants=sum(r.participant_count for r in self.rooms.values()),
        )

    def _new_participant(self, *args: Any, **kwargs: Any) -> Participant:
        participant = self._participant_factory(*args, **kwargs)
        self.live_participants.add(participant)
        return participant

    def _retire(self, participant: Participant) -> None:
        """Fold a closed peer connection's counters into the totals metrics report."""
        if participant in self.live_participants:
            self.live_participants.discard(participant)
            metrics.add_samples(self.retired, [participant])

    def _ended(self, room: Room) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
        self.sessions_ended[room.ended_reason or "unknown"] += 1
        # The room's own close tasks finish the peer connections; keep a handle so close()
        # can wait for them.
        task = asyncio.get_running_loop().create_task(room.drain(), name=f"drain:{room.id}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """End every session (reason `closed`) and wait for their connections to close."""
        for room in list(self.rooms.values()):
            room.end("closed")
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
        self.transcoders.stop_all()
