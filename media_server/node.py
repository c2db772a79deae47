"""The SFU inside an aiohttp app: signaling socket, metrics, the worker's life, the bus bridge.

    worker = attach(app, settings, authorize=..., bus=bus)

mounts ``GET /ws`` and ``GET /metrics``, publishes every room event on the bus topic
``room:<room id>`` (the control plane follows visits with it), ends a live session when the
control plane announces ``appointment.cancelled`` or ``visit.ended`` on that topic, and removes
the members whose links ``appointment.relinked`` revoked. On app
shutdown every session ends (reason ``closed``) before the sockets are cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry

from config.settings import Settings
from media_server.metrics import metrics_handler, registry_for
from media_server.signaling import Authorize, websocket_handler
from media_server.worker import Worker

log = logging.getLogger(__name__)

WORKER = web.AppKey("sfu_worker", Worker)
# The worker's Prometheus registry: a process adds its own collectors (load, state) to it.
METRICS = web.AppKey("sfu_metrics", CollectorRegistry)
TOPIC_PREFIX = "room:"
# Control-plane events on a room topic that end its live session.
ENDING_EVENTS = {"appointment.cancelled", "visit.ended"}
# The clinic re-issued links: members joined with older link versions leave (Room.revoke).
RELINKED = "appointment.relinked"
RETRY_SECONDS = 1.0


class Bus(Protocol):
    async def publish(self, topic: str, event: dict[str, Any]) -> None: ...

    def subscribe(self, *topics: str) -> contextlib.AbstractAsyncContextManager[Any]: ...


def attach(
    app: web.Application,
    settings: Settings,
    *,
    authorize: Authorize,
    bus: Bus | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> Worker:
    """Mount the SFU on ``app``; ``on_event`` also sees every room event (before the bus)."""

    async def publish(event: dict[str, Any]) -> None:
        if on_event is not None:
            on_event(event)
        if bus is not None:
            await bus.publish(TOPIC_PREFIX + event["room_id"], event)

    worker = Worker(settings.media, on_event=publish)
    app[WORKER] = worker
    app[METRICS] = registry_for(worker)
    app.router.add_get("/ws", websocket_handler(worker, authorize))
    app.router.add_get("/metrics", metrics_handler(app[METRICS]))

    async def end_sessions(app: web.Application) -> None:
        await worker.close()

    async def follow_bus(app: web.Application) -> AsyncIterator[None]:
        task = None
        if bus is not None:
            task = asyncio.get_running_loop().create_task(
                _follow(bus, worker), name="sfu-bus-follower"
            )
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.on_shutdown.append(end_sessions)
    app.cleanup_ctx.append(follow_bus)
    return worker


async def _follow(bus: Bus, worker: Worker) -> None:
    """End sessions the control plane closed; resubscribe (once a second) if the bus fails."""
    while True:
        try:
            async with bus.subscribe(TOPIC_PREFIX + "*") as feed:
                async for event in feed:
                    if not isinstance(event, dict) or not isinstance(event.get("room_id"), str):
                        continue
                    if event.get("type") in ENDING_EVENTS:
                        worker.end_room(event["room_id"], "cancelled")
                    elif event.get("type") == RELINKED and isinstance(event.get("versions"), dict):
                        room = worker.rooms.get(event["room_id"])
                        if room is not None:
                            room.revoke(event["versions"])
        except Exception:
            worker.counters["bus_failures"] += 1
            if worker.counters["bus_failures"] % 100 == 1:
                log.exception("SFU bus follower failed (%d times); subscribing again",
                              worker.counters["bus_failures"])  # fmt: skip
            await asyncio.sleep(RETRY_SECONDS)
