"""One SFU worker as a member of the cluster (the worker process, or the SFU inside a control
app): it registers and beats with its measured load, admits a join only for a room placed on
it (taking over rooms of a dead worker and continuing their sessions), keeps each room's
session record for a successor, and drains.

    member = attach(app, settings, store, bus, worker_id=..., node=..., url=...)

Drain (SIGTERM: from its supervisor, which follows ``televisit admin drain``): the worker
registers as ``draining`` (no new rooms; joins to its own rooms still succeed), and
``member.drained`` is set once its rooms ended or, at ``cluster.drain_deadline_seconds``,
once it handed them off: it leaves the registry and closes every member's socket with 4014, so
the clients ask the control plane again and continue on another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from config.settings import Settings
from control.bus import EventBus
from control.clinic import join as _clinic_join  # noqa: F401 - registers the vc- rooms' guard
from control.cluster import handoff
from control.cluster.placement import NoWorker, Placer
from control.cluster.registry import Registry, WorkerInfo
from control.join import authorize_join
from control.store import Store
from media_server import node as sfu_node
from media_server.load import LoadMeter
from media_server.metrics import PREFIX
from media_server.room import Grant
from media_server.signaling import CLOSE_MOVED
from media_server.worker import Worker

log = logging.getLogger(__name__)

MEMBER = web.AppKey("sfu_member", object)
# Room events after which the room's session record is rewritten (or deleted once ended).
SESSION_EVENTS = {"participant_joined", "participant_left", "ended"}
# A draining worker looks at its rooms at least this often (an ended room also wakes it).
DRAIN_POLL_SECONDS = 5.0
WRITER_WAIT_SECONDS = 10.0


class Moved(Exception):
    """The room is held by another worker, or this one takes no new rooms (close 4014)."""

    reason = "moved"


class SfuMember:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        worker: Worker,
        *,
        worker_id: str,
        node: str,
        url: str,
    ) -> None:
        self.settings = settings
        self.store = store
        self.worker = worker
        self.id = worker_id
        self.node = node
        self.url = url
        self.registry = Registry(store)
        self.placer = Placer(store, self.registry)
        self.meter = LoadMeter(worker)
        self.state = "accepting"
        self.started_at = time.time()
        self.handed_off = False
        self.drained = asyncio.Event()
        self.failures = 0
        self._dirty: set[str] = set()
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._room_ended = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    # ---- registry --------------------------------------------------------------------------

    async def beat(self) -> WorkerInfo:
        """Report the current load and state (the registry record lives one TTL)."""
        load = self.meter.sample()
        info = WorkerInfo(
            id=self.id,
            node=self.node,
            url=self.url,
            state=self.state,  # type: ignore[arg-type]
            rooms=load.rooms,
            participants=load.participants,
            cpu=round(load.cpu, 4),
            pps=round(load.pps, 1),
            started_at=self.started_at,
        )
        return await self.registry.beat(info, self.settings.cluster.heartbeat_ttl_seconds)

    async def _beats(self) -> None:
        while not self.handed_off:
            try:
                await self.beat()
            except Exception:
                self._failed("heartbeat")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.cluster.heartbeat_seconds)
            self._wake.clear()

    def _failed(self, what: str) -> None:
        self.failures += 1
        if self.failures % 100 == 1:
            log.exception("SFU member %s: %s failed (%d failures)", self.id, what, self.failures)

    # ---- joins -----------------------------------------------------------------------------

    async def admit(self, room_id: str) -> None:
        """Let a join through only for a room placed here; a room without a live holder is
        taken over (continuing the dead holder's session). Raises Moved."""
        if room_id in self.worker.rooms:
            return

        async def here(candidates: list[WorkerInfo]) -> WorkerInfo | None:
            return next((w for w in candidates if w.id == self.id), None)

        try:
            holder, placement = await self.placer.locate(room_id, here)
        except NoWorker as exc:
            raise Moved("this worker takes no new rooms; ask where to join again") from exc
        if holder.id != self.id:
            raise Moved("the room is on another worker; ask where to join again")
        recent = time.time() - placement.placed_at < self.settings.media.reconnect_grace_seconds
        if placement.previous and recent and room_id not in self.worker.rooms:
            snapshot = await handoff.load(self.store, room_id, placement.previous)
            if snapshot is not None:
                self.worker.resume(room_id, snapshot)
                log.info(
                    "session taken over",
                    extra={"room_id": room_id, "worker": self.id, "from": placement.previous},
                )

    # ---- session records -------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "ended":
            self._room_ended.set()
        if self.handed_off or event.get("type") not in SESSION_EVENTS:
            return
        room_id = event["room_id"]
        self._dirty.add(room_id)
        if room_id not in self._writers:
            task = asyncio.get_running_loop().create_task(self._write(room_id))
            self._writers[room_id] = task
            task.add_done_callback(lambda _: self._writers.pop(room_id, None))

    async def _write(self, room_id: str) -> None:
        """Bring the room's session record (and placement) up to date, coalescing events."""
        while room_id in self._dirty and not self.handed_off:
            self._dirty.discard(room_id)
            room = self.worker.rooms.get(room_id)
            try:
                if room is None:
                    await handoff.forget(self.store, room_id, self.id)
                    await self.placer.release(room_id, self.id)
                else:
                    await handoff.save(self.store, room_id, self.id, room.snapshot())
            except Exception:
                self._failed("session record")

    # ---- drain -----------------------------------------------------------------------------

    def drain(self, why: str) -> None:
        """Take no new rooms; set ``drained`` when the rooms ended or were handed off."""
        if self.state == "draining":
            return
        self.state = "draining"
        log.info("draining", extra={"worker": self.id, "why": why, "rooms": len(self.worker.rooms)})
        self._wake.set()
        self._tasks.append(asyncio.get_running_loop().create_task(self._drain()))

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.settings.cluster.drain_deadline_seconds
        while self.worker.rooms and (remaining := deadline - time.monotonic()) > 0:
            self._room_ended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room_ended.wait(), min(remaining, DRAIN_POLL_SECONDS))
        if self.worker.rooms:
            await self.hand_off()
        self.drained.set()

    async def hand_off(self) -> None:
        """Leave the registry and send every member to ask where to join again: each room
        continues on the worker it is placed on next."""
        log.info("handing rooms off", extra={"worker": self.id, "rooms": list(self.worker.rooms)})
        for task in list(self._writers.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), WRITER_WAIT_SECONDS)
        self.handed_off = True
        await self.registry.remove(self.id)
        for room in list(self.worker.rooms.values()):
            for member in room.members.values():
                if member.channel is not None:
                    member.channel.close(CLOSE_MOVED, "this server is going away; join again")

    # ---- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Register (the first heartbeat is written before this returns) and keep beating."""
        await self.beat()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._beats(), name=f"beats:{self.id}"))

    async def stop(self) -> None:
        """Finish the session records, stop beating and leave the registry."""
        writers = list(self._writers.values())
        if writers:
            await asyncio.wait(writers, timeout=WRITER_WAIT_SECONDS)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.registry.remove(self.id)


class MemberCollector(Collector):
    """The worker's own load and state on its /metrics."""

    def __init__(self, member: SfuMember) -> None:
        self.member = member

    def collect(self) -> Iterator[Metric]:
        m = self.member
        info = GaugeMetricFamily(
            PREFIX + "worker_info", "this SFU worker", labels=["worker", "node", "url"]
        )
        info.add_metric([m.id, m.node, m.url], 1)
        yield info
        last = m.meter.last
        yield GaugeMetricFamily(
            PREFIX + "worker_cpu_share", "share of a core used (last heartbeat)", value=last.cpu
        )
        yield GaugeMetricFamily(
            PREFIX + "worker_packets_per_second",
            "RTP packets/s received plus forwarded (last heartbeat)",
            value=last.pps,
        )
        yield GaugeMetricFamily(
            PREFIX + "worker_draining", "1 while draining", value=int(m.state == "draining")
        )


def attach(
    app: web.Application,
    settings: Settings,
    store: Store,
    bus: EventBus | None,
    *,
    worker_id: str,
    node: str,
    url: str,
) -> SfuMember:
    """Mount an SFU worker on ``app`` (media_server.node.attach) as a cluster member: it
    registers when the app starts and leaves when it stops."""
    holder: list[SfuMember] = []

    def on_event(event: dict[str, Any]) -> None:
        holder[0].on_event(event)

    async def authorize(token: str) -> Grant:
        """The control plane's token check, then the room must be placed here."""
        grant = await authorize_join(store, settings, token)
        await holder[0].admit(grant.room_id)
        return grant

    worker = sfu_node.attach(app, settings, authorize=authorize, bus=bus, on_event=on_event)
    member = SfuMember(settings, store, worker, worker_id=worker_id, node=node, url=url)
    holder.append(member)
    app[MEMBER] = member
    app[sfu_node.METRICS].register(MemberCollector(member))

    async def life(app: web.Application) -> AsyncIterator[None]:
        await member.start()
        yield
        await member.stop()

    app.cleanup_ctx.append(life)
    return member
