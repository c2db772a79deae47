"""Each control node follows the SFU's events of visit rooms (bus topics ``room:vc-...``) and
keeps the visits' participant status; visit closures go the other way, to end the room."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from control.background import Background, worth_logging
from control.clinic import visits
from control.clinic.context import Clinic
from control.clinic.events import Bus

log = logging.getLogger(__name__)

TOPIC = f"room:{visits.ROOM_PREFIX}*"
RETRY_SECONDS = 1.0


class RoomWatcher:
    def __init__(self, clinic: Clinic, bus: Any) -> None:
        self.clinic = clinic
        self.bus = bus
        self.handled = self.errors = 0
        self.ready = asyncio.Event()
        self._task = Background("clinic-room-watcher")

    def start(self) -> None:
        self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()

    def _failed(self) -> None:
        self.errors += 1
        if worth_logging(self.errors):
            log.exception("clinic room watcher failed (%d failures so far)", self.errors)

    async def _run(self) -> None:
        while True:
            try:
                async with self.bus.subscribe(TOPIC) as feed:
                    self.ready.set()
                    async for event in feed:
                        try:
                            await visits.on_room_event(self.clinic, event)
                            self.handled += 1
                        except Exception:  # a store hiccup: this event is lost, not the feed
                            self._failed()
            except Exception:  # the bus itself failed: subscribe again
                self.ready.clear()
                self._failed()
                await asyncio.sleep(RETRY_SECONDS)


async def close_room(bus: Bus, room_id: str) -> None:
    """Ask the SFU to end a closed visit's live session (anyone still in it is let go)."""
    await bus.publish(f"room:{room_id}", {"type": "visit.ended", "room_id": room_id})
