"""The registry of SFU workers: each live worker's record in the store, renewed by heartbeats.

A record's score in the ``sfu_workers`` index is the time it expires (its last heartbeat plus
``cluster.heartbeat_ttl_seconds``), so the live workers are one range query from ``now`` on,
on SQLite and Redis alike. A worker that stops beating (SIGKILL, a frozen or lost host) drops
out of ``live()`` when its TTL runs out; its supervisor removes it at once when it sees the
process die. Expired records are swept by whoever lists the workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from control.store import Store
from control.store.base import AlreadyExists, NotFound, VersionConflict

log = logging.getLogger(__name__)

KIND = "sfu_worker"
INDEX = "sfu_workers"
# Records expired this long ago are deleted by the next listing (a host that never came back).
SWEEP_AFTER_SECONDS = 600.0
MAX_WORKERS = 1000
# Bus topic of drain requests: {"worker": id} or {"node": node id} (televisit admin drain).
DRAIN_TOPIC = "sfu:drain"


class WorkerInfo(BaseModel):
    """What a worker reports in each heartbeat. Times are seconds since the epoch."""

    id: str
    node: str
    url: str  # the signaling URL clients open (ws:// or wss://)
    state: Literal["accepting", "draining"] = "accepting"
    rooms: int = 0
    participants: int = 0
    cpu: float = 0.0  # share of one core this process used over the last interval (0..1)
    pps: float = 0.0  # RTP packets per second, received plus forwarded
    started_at: float = 0.0
    at: float = 0.0  # when this heartbeat was taken
    expires_at: float = 0.0

    @property
    def accepting(self) -> bool:
        return self.state == "accepting"


class Registry:
    """Heartbeat records of SFU workers in ``store``; ``clock`` gives seconds since the epoch."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def beat(self, info: WorkerInfo, ttl: float) -> WorkerInfo:
        """Write ``info`` as the worker's record, live for ``ttl`` seconds from now."""
        now = self.clock()
        info = info.model_copy(update={"at": now, "expires_at": now + ttl})
        data = info.model_dump()
        indexes = {INDEX: info.expires_at}
        for _ in range(3):
            record = await self.store.get(KIND, info.id)
            try:
                if record is None:
                    await self.store.create(KIND, info.id, data, indexes=indexes)
                else:
                    await self.store.update(
                        KIND, info.id, data, expect_version=record.version, indexes=indexes
                    )
                return info
            except (AlreadyExists, VersionConflict, NotFound):
                continue  # removed or written meanwhile (the supervisor): read again
        raise VersionConflict(KIND, info.id, -1, None)

    async def remove(self, worker_id: str) -> None:
        """Take a worker out at once (it exited, or its process was seen to die)."""
        try:
            await self.store.delete(KIND, worker_id)
        except NotFound:
            pass

    async def live(self) -> list[WorkerInfo]:
        """Workers whose last heartbeat is younger than their TTL, by id."""
        now = self.clock()
        records = await self.store.range(INDEX, now, limit=MAX_WORKERS)
        expired = await self.store.range(INDEX, hi=now - SWEEP_AFTER_SECONDS, limit=10)
        for record in expired:
            log.info("registry: sweeping worker %s (expired long ago)", record.id)
            try:
                await self.store.delete(KIND, record.id, expect_version=record.version)
            except (NotFound, VersionConflict):
                pass
        return sorted((WorkerInfo.model_validate(r.data) for r in records), key=lambda w: w.id)

    async def get(self, worker_id: str) -> WorkerInfo | None:
        """The worker's record if it is live."""
        record = await self.store.get(KIND, worker_id)
        if record is None or record.data["expires_at"] < self.clock():
            return None
        return WorkerInfo.model_validate(record.data)
