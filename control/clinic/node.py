"""The virtual clinic on one control node: its Clinic context and background tasks (webhook,
expiry sweeper, room watcher)."""

from __future__ import annotations

import time
from collections.abc import Callable

from config.settings import Settings
from control.clinic.context import Clinic
from control.clinic.events import Bus, Events
from control.clinic.roomwatch import RoomWatcher
from control.clinic.sweeper import Sweeper
from control.clinic.webhook import Webhook
from control.store import Store


class ClinicNode:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.webhook = Webhook(settings.clinic)
        self.clinic = Clinic(store, settings.clinic, Events(bus, self.webhook), clock)
        self.sweeper = Sweeper(self.clinic)
        self.room_watcher = RoomWatcher(self.clinic, bus)

    async def start(self) -> None:
        await self.webhook.start()
        self.sweeper.start()
        self.room_watcher.start()

    async def stop(self) -> None:
        await self.room_watcher.stop()
        await self.sweeper.stop()
        await self.webhook.stop()
