"""Room placement: each room lives on one SFU worker, chosen when the room is first needed and
kept while that worker lives; a room whose worker died (or was drained away) is placed again.

The placement is a store record (``sfu_room``, keyed by room id) written with the store's
optimistic versions, so control nodes racing on one room agree on one worker. It sits in the
index ``sfu_rooms:<worker id>`` scored by its time, which tells how many rooms went to a
worker since its last heartbeat (load it has not reported yet).

The least loaded worker is the one with the lowest expected share of a core: what it last
reported (``max(cpu, pps / PACKETS_PER_CORE)``: CPU reacts to everything the process does,
packets/s to committed media even while CPU readings are noisy) plus its rooms placed since,
each costing what its rooms cost on average (at least NEW_ROOM_SHARE). Shares closer than
LOAD_NOISE to the lowest are taken as equal and the fewest rooms decide among them: an idle
worker's readings wander by a few % of a core, more than a new room is assumed to cost, which
would otherwise send every new room to whichever worker happened to read lowest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from control.cluster.registry import Registry, WorkerInfo
from control.store import Store
from control.store.base import AlreadyExists, NotFound, VersionConflict

log = logging.getLogger(__name__)

KIND = "sfu_room"
# RTP packets per second (in + out) one core forwards: ~17-20 us per forwarded packet
# (benchmarks/RESULTS.md) with headroom for RTCP, DTLS and signaling.
PACKETS_PER_CORE = 40_000.0
# The least a room placed since the last heartbeat is assumed to cost: a 1:1 consult at
# 1.5 Mbit/s video is ~800 packets/s in + out, ~2-3% of a core.
NEW_ROOM_SHARE = 0.03
# Shares of a core within this of the lowest are equal (idle readings wander by 1-8%).
LOAD_NOISE = 0.05
ATTEMPTS = 5

Chooser = Callable[[list[WorkerInfo]], Awaitable[WorkerInfo | None]]


class Placement(BaseModel):
    room_id: str
    worker: str
    placed_at: float
    previous: str | None = None  # the worker it was on before it had to move


class NoWorker(Exception):
    """No live worker accepts new rooms."""


def rooms_index(worker_id: str) -> str:
    return f"sfu_rooms:{worker_id}"


def share(worker: WorkerInfo) -> float:
    """The share of one core the worker's last heartbeat says it uses."""
    return max(worker.cpu, worker.pps / PACKETS_PER_CORE)


def expected_share(worker: WorkerInfo, placed_since: int) -> float:
    used = share(worker)
    per_room = max(used / worker.rooms, NEW_ROOM_SHARE) if worker.rooms else NEW_ROOM_SHARE
    return used + placed_since * per_room


class Placer:
    def __init__(
        self, store: Store, registry: Registry, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock

    async def locate(self, room_id: str, choose: Chooser) -> tuple[WorkerInfo, Placement]:
        """The live worker holding ``room_id``; if none, the one ``choose`` picks among the live
        workers that accept rooms (recorded and logged). Raises NoWorker."""
        for _ in range(ATTEMPTS):
            record = await self.store.get(KIND, room_id)
            current = Placement.model_validate(record.data) if record else None
            if current is not None:
                holder = await self.registry.get(current.worker)
                if holder is not None:
                    return holder, current
            candidates = [w for w in await self.registry.live() if w.accepting]
            chosen = await choose(candidates)
            if chosen is None:
                raise NoWorker("no SFU worker is taking new rooms")
            placement = Placement(
                room_id=room_id,
                worker=chosen.id,
                placed_at=self.clock(),
                previous=current.worker if current else None,
            )
            indexes = {rooms_index(chosen.id): placement.placed_at}
            try:
                if record is None:
                    await self.store.create(KIND, room_id, placement.model_dump(), indexes=indexes)
                else:
                    await self.store.update(
                        KIND,
                        room_id,
                        placement.model_dump(),
                        expect_version=record.version,
                        indexes=indexes,
                    )
            except (AlreadyExists, VersionConflict, NotFound):
                continue  # another node placed it meanwhile: take its choice
            log.info(
                "room placed",
                extra={
                    "room_id": room_id,
                    "worker": chosen.id,
                    "node": chosen.node,
                    "why": "new" if current is None else "holder gone",
                    "previous": placement.previous,
                    "candidates": {w.id: round(share(w), 3) for w in candidates},
                },
            )
            return chosen, placement
        raise NoWorker(f"the placement of {room_id} kept changing")

    async def least_loaded(self, candidates: list[WorkerInfo]) -> WorkerInfo | None:
        """The candidate with the lowest expected share of a core, shares within LOAD_NOISE of
        the lowest counting as equal (then fewest rooms, lower share, id)."""
        scored = []
        for worker in candidates:
            since = await self.store.count(rooms_index(worker.id), lo=worker.at)
            scored.append((expected_share(worker, since), worker.rooms + since, worker.id, worker))
        if not scored:
            return None
        lowest = min(expected for expected, *_ in scored)
        near = [entry for entry in scored if entry[0] <= lowest + LOAD_NOISE]
        return min(near, key=lambda entry: (entry[1], entry[0], entry[2]))[3]

    async def release(self, room_id: str, worker_id: str) -> None:
        """Forget the placement of a room that ended on ``worker_id`` (if still there)."""
        record = await self.store.get(KIND, room_id)
        if record is None or record.data["worker"] != worker_id:
            return
        try:
            await self.store.delete(KIND, room_id, expect_version=record.version)
        except (NotFound, VersionConflict):
            pass


async def signaling_url(
    store: Store, room_id: str, *, clock: Callable[[], float] = time.time
) -> str:
    """Where clients signal for ``room_id``: its live holder's URL, or the least loaded live
    worker's once the room is placed there. Raises NoWorker."""
    placer = Placer(store, Registry(store, clock=clock), clock=clock)
    worker, _ = await placer.locate(room_id, placer.least_loaded)
    return worker.url
